"""The WhatsApp/SMS template catalog: which approved templates the team may send.

An admin lists templates in a YAML file (`SMS_TEMPLATES_FILE`, default `templates.yml`; see
`templates.example.yml`). Each entry names the sender, the provider's template id, the body
text used for previews and every variable. This module loads and checks that file (every
problem reported at once, each with its file and line), checks the values a person typed,
and builds the provider-shaped `TemplateSend` the providers put on the wire.

Values are keyed by a variable's `ref`: its key (`"1"`, `"appt_date"`), or `Group.key`
(`"Body.1"`) for Gupshup, whose variables are grouped by template component.
"""

from __future__ import annotations

import difflib
import os
import re
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Self

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from providers.base import TemplateSend

DEFAULT_CATALOG_PATH = "templates.yml"
ENV_VAR = "SMS_TEMPLATES_FILE"

TemplateSender = Literal["twlowa", "gswa", "textus", "bird", "sandbox"]
TEMPLATE_SENDERS: tuple[str, ...] = ("twlowa", "gswa", "textus", "bird", "sandbox")
# Senders people may know from the rest of the app that cannot carry a template, with why.
NO_TEMPLATE_SENDERS = {"twlo": "sender 'twlo' (Twilio SMS) cannot send templates; use 'twlowa' for Twilio WhatsApp"}
GROUPS: tuple[str, ...] = ("Header", "Body", "Buttons")
MEDIA_KEY = "MEDIA_URL"

# Slack caps: an input block label is at most 2000 characters, a placeholder 150, a
# plain_text_input max_length 3000, and a modal 100 blocks (we keep room for the others).
MAX_LABEL = 2000
MAX_EXAMPLE = 150
MAX_VALUE_LENGTH = 3000
MAX_VARIABLES = 90
MAX_KEY = 100

_NAME_RE = re.compile(r"^[a-z0-9][a-z0-9_-]{0,49}$")
_KEY_RE = re.compile(r"^[A-Za-z0-9_]+$")
_TWILIO_SID_RE = re.compile(r"^HX[0-9a-fA-F]{32}$")
# Bird types `locale` as a BCP 47 tag: language, optional script and region, hyphens only.
_LOCALE_RE = re.compile(r"^[A-Za-z]{2,3}(-[A-Za-z]{4})?(-(?:[A-Za-z]{2}|[0-9]{3}))?(-[A-Za-z0-9]{5,8})*$")
_PLACEHOLDER_RE = re.compile(r"\{\{\s*([^{}]*?)\s*\}\}")
_VALUE_KEY_RE = re.compile(r"^[A-Za-z0-9_]+(\.[A-Za-z0-9_]+)?$")

# Fields whose YAML scalars keep their YAML type; every other scalar is read as the text the
# admin wrote, so `key: 1`, `example: 12:00` and `locale: no` stay "1", "12:00" and "no"
# instead of becoming 1, 720 and False.
_TYPED_FIELDS = frozenset({"required", "media", "max_length"})


# --------------------------------------------------------------------------- models


def _locale_problem(locale: str) -> str:
    """Why Bird would refuse this locale, and what to write instead."""
    hyphenated = locale.replace("_", "-")
    if "_" in locale and _LOCALE_RE.match(hyphenated):
        return (f"locale '{locale}' uses an underscore; Bird takes BCP 47 locales with a hyphen: "
                f"write locale: {hyphenated}")
    return f"locale '{locale}' is not a BCP 47 locale like en or en-US (language, then region, with a hyphen)"


@dataclass(frozen=True)
class TemplateProblem:
    """A problem inside one template. `loc` is relative to the template (`("variables", 0)`);
    `body_index` points into `body` when the problem is a placeholder."""

    loc: tuple[str | int, ...]
    message: str
    body_index: int | None = None


class TemplateVariable(BaseModel):
    model_config = ConfigDict(extra="forbid")

    key: str = Field(min_length=1, max_length=MAX_KEY)
    label: str = Field(min_length=1, max_length=MAX_LABEL)
    required: bool = True
    example: str | None = Field(default=None, max_length=MAX_EXAMPLE)
    group: Literal["Header", "Body", "Buttons"] | None = None  # gswa only, required there
    max_length: int | None = Field(default=None, gt=0, le=MAX_VALUE_LENGTH)

    @field_validator("key")
    @classmethod
    def _key_chars(cls, value: str) -> str:
        if not _KEY_RE.match(value):
            raise ValueError("use letters, digits and _ only")
        return value

    @field_validator("group", mode="before")
    @classmethod
    def _group_case(cls, value: Any) -> Any:
        # Admins write `group: body`; the wire needs `Body`.
        if isinstance(value, str):
            for group in GROUPS:
                if value.strip().lower() == group.lower():
                    return group
        return value

    @property
    def ref(self) -> str:
        """How values refer to this variable: `Body.1` for Gupshup, the key elsewhere."""
        return f"{self.group}.{self.key}" if self.group else self.key


class TemplateDef(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str
    sender: TemplateSender
    # Twilio content SID (HX...), Gupshup template id, TextUs template id. For bird the
    # project id, which may instead be given as `project_id`.
    template_id: str | None = None
    project_id: str | None = None  # bird only
    version: str = "latest"  # bird only
    locale: str | None = None  # bird only
    body: str
    media: bool = False  # gswa: the template has a media header, so MEDIA_URL is needed
    variables: list[TemplateVariable] = Field(default_factory=list, max_length=MAX_VARIABLES)
    description: str | None = None

    @field_validator("name")
    @classmethod
    def _name_slug(cls, value: str) -> str:
        if not _NAME_RE.match(value):
            raise ValueError(
                "use a short name of lowercase letters, digits, '-' and '_' (at most 50), e.g. appt-reminder"
            )
        return value

    @field_validator("body")
    @classmethod
    def _body_text(cls, value: str) -> str:
        # A YAML `|` block ends with a newline nobody means to send.
        value = value.rstrip()
        if not value:
            raise ValueError("must not be empty; give the template text used for the preview")
        return value

    @model_validator(mode="after")
    def _consistent(self, info: ValidationInfo) -> Self:
        # The loader validates with `collect_problems` so it can report each problem on its
        # own line; built any other way, an inconsistent template is refused outright.
        if info.context and info.context.get("collect_problems"):
            return self
        problems = self.problems()
        if problems:
            raise ValueError("; ".join(p.message for p in problems))
        return self

    # -- derived

    @property
    def bird_project_id(self) -> str | None:
        return self.project_id or self.template_id

    @property
    def send_id(self) -> str:
        """The id that goes on the wire (`TemplateSend.id`)."""
        if self.sender == "bird":
            return self.bird_project_id or ""
        return self.template_id or self.name

    def variable(self, ref: str) -> TemplateVariable | None:
        for var in self.variables:
            if var.ref == ref:
                return var
        return None

    def placeholder_ref(self, placeholder: str) -> str:
        """The variable ref a body placeholder means: for gswa `{{1}}` is `Body.1`."""
        if self.sender != "gswa":
            return placeholder
        group, dot, key = placeholder.partition(".")
        if not dot:
            return f"Body.{placeholder}"
        for known in GROUPS:
            if group.lower() == known.lower():
                return f"{known}.{key}"
        return placeholder

    # -- consistency checks that need more than one field

    def problems(self) -> list[TemplateProblem]:
        return [*self.sender_problems(), *self._variable_problems(), *self._body_problems()]

    def sender_problems(self) -> list[TemplateProblem]:
        """The sender's rules: ids, bird-only fields, media. Needs only the top-level fields."""
        out: list[TemplateProblem] = []
        who = f"{self.sender} template"
        needs_id = {
            "twlowa": "the Twilio content SID, HX...",
            "gswa": "the Gupshup template id",
            "textus": "the TextUs template id",
        }
        if self.sender in needs_id and not self.template_id:
            out.append(TemplateProblem((), f"{who} needs template_id ({needs_id[self.sender]})"))
        if self.sender == "twlowa" and self.template_id and not _TWILIO_SID_RE.match(self.template_id):
            out.append(
                TemplateProblem(
                    ("template_id",),
                    f"template_id '{self.template_id}' is not a Twilio content SID "
                    "(HX followed by 32 hex characters)",
                )
            )
        if self.sender == "bird":
            out.extend(self._bird_problems())
        else:
            for field in ("project_id", "locale", "version"):
                if field in self.model_fields_set and getattr(self, field) is not None:
                    out.append(TemplateProblem((field,), f"{field} is only for bird templates"))
        if self.media and self.sender != "gswa":
            out.append(
                TemplateProblem(
                    ("media",),
                    "media is only for gswa templates (a Twilio media URL is a numbered variable)",
                )
            )
        return out

    def variable_problems(self) -> list[TemplateProblem]:
        """Variables against the sender and the body: groups, keys, duplicates, placeholders."""
        return [*self._variable_problems(), *self._body_problems()]

    def _bird_problems(self) -> list[TemplateProblem]:
        out: list[TemplateProblem] = []
        if self.project_id and self.template_id and self.project_id != self.template_id:
            out.append(
                TemplateProblem(
                    ("template_id",),
                    "bird: template_id and project_id differ; give the Bird project id once, as project_id",
                )
            )
        project = self.bird_project_id
        if not project:
            out.append(TemplateProblem((), "bird template needs project_id (the Bird template project id)"))
        else:
            try:
                uuid.UUID(project)
            except ValueError:
                field = "project_id" if self.project_id else "template_id"
                out.append(
                    TemplateProblem(
                        (field,),
                        f"{field} '{project}' is not a Bird project id "
                        "(a UUID like ce6a2fd6-b2fa-4f5a-a2cd-f3bd15883318)",
                    )
                )
        if not self.locale:
            out.append(TemplateProblem((), "bird template needs locale (e.g. en or en-US)"))
        elif not _LOCALE_RE.match(self.locale):
            out.append(TemplateProblem(("locale",), _locale_problem(self.locale)))
        if not self.version.strip():
            out.append(TemplateProblem(("version",), "version must not be empty (use latest)"))
        return out

    def _variable_problems(self) -> list[TemplateProblem]:
        out: list[TemplateProblem] = []
        first: dict[str, int] = {}
        for i, var in enumerate(self.variables):
            if self.sender == "gswa" and var.group is None:
                out.append(
                    TemplateProblem(
                        ("variables", i),
                        f"variable '{var.key}' needs a group (Header, Body or Buttons): "
                        "Gupshup sends variables per template component",
                    )
                )
                continue
            if self.sender != "gswa" and var.group is not None:
                out.append(
                    TemplateProblem(("variables", i, "group"), "group is only for gswa templates")
                )
            # Twilio and Gupshup number their placeholders; a name here is a typo.
            if self.sender in ("twlowa", "gswa") and not var.key.isdigit():
                out.append(
                    TemplateProblem(
                        ("variables", i, "key"),
                        f"variable key '{var.key}' must be a number ('1', '2', ...) for {self.sender}",
                    )
                )
            ref = self._ref(var)
            if ref in first:
                out.append(
                    TemplateProblem(
                        ("variables", i, "key"),
                        f"duplicate variable '{ref}' (first is variable {first[ref] + 1})",
                    )
                )
            else:
                first[ref] = i
        return out

    def _ref(self, var: TemplateVariable) -> str:
        # A stray group on a non-gswa variable is reported once; it must not also make the
        # variable look unused.
        return var.ref if self.sender == "gswa" else var.key

    def _body_problems(self) -> list[TemplateProblem]:
        out: list[TemplateProblem] = []
        refs = {self._ref(var) for var in self.variables}
        used: set[str] = set()
        for match in _PLACEHOLDER_RE.finditer(self.body):
            text = match.group(1)
            ref = self.placeholder_ref(text)
            if not text:
                message = "empty placeholder {{}} in body"
            elif self.sender == "gswa" and ref.partition(".")[0] not in GROUPS:
                message = f"placeholder {{{{{text}}}}} in body: the group must be Header, Body or Buttons"
            elif ref not in refs:
                message = f"placeholder {{{{{text}}}}} in body has no variable; add a variable '{ref}'"
            else:
                used.add(ref)
                continue
            out.append(TemplateProblem(("body",), message, match.start()))
        for i, var in enumerate(self.variables):
            if self.sender == "gswa" and var.group is None:
                continue  # already reported as missing its group
            ref = self._ref(var)
            if ref not in used:
                hint = var.key if var.group in (None, "Body") or self.sender != "gswa" else ref
                out.append(
                    TemplateProblem(
                        ("variables", i),
                        f"variable '{ref}' is not used in body; add {{{{{hint}}}}} to body or remove it",
                    )
                )
        return out


class Catalog(BaseModel):
    model_config = ConfigDict(extra="forbid")

    templates: list[TemplateDef] = Field(default_factory=list)

    @model_validator(mode="after")
    def _unique_names(self) -> Self:
        seen: set[str] = set()
        for tpl in self.templates:
            if tpl.name in seen:
                raise ValueError(f"duplicate template name '{tpl.name}'")
            seen.add(tpl.name)
        return self

    def get(self, name: str) -> TemplateDef | None:
        wanted = name.strip().lower()
        return next((t for t in self.templates if t.name == wanted), None)

    def for_sender(self, sender: str) -> list[TemplateDef]:
        return [t for t in self.templates if t.sender == sender]

    def names(self) -> list[str]:
        return [t.name for t in self.templates]

    def __len__(self) -> int:
        return len(self.templates)


# --------------------------------------------------------------------------- errors


@dataclass(frozen=True)
class CatalogProblem:
    file: str
    line: int | None
    message: str

    def __str__(self) -> str:
        return f"{self.file}:{self.line}: {self.message}" if self.line else f"{self.file}: {self.message}"


class CatalogError(ValueError):
    """The catalog cannot be used. `str()` lists every problem as `file:line: problem`."""

    def __init__(self, problems: list[CatalogProblem]) -> None:
        self.problems = problems
        super().__init__("\n".join(str(p) for p in problems))


class TemplateValuesError(ValueError):
    """The values do not fit the template. `errors` maps a value key to a message."""

    def __init__(self, template: str, errors: dict[str, str]) -> None:
        self.errors = errors
        detail = "; ".join(f"{k}: {v}" for k, v in errors.items())
        super().__init__(f"Template '{template}': {detail}")


# --------------------------------------------------------------------------- loading

Loc = tuple[str | int, ...]


class _Reader:
    """Turns a composed YAML node tree into plain data, noting each path's line.

    Composing (rather than `safe_load`) keeps the marks, so every problem can name its line.
    """

    def __init__(self, file: str) -> None:
        self.file = file
        self.lines: dict[Loc, int] = {}
        self.nodes: dict[Loc, yaml.Node] = {}
        self.problems: list[CatalogProblem] = []
        self._constructor = yaml.constructor.SafeConstructor()

    def read(self, node: yaml.Node, path: Loc = (), field: str | None = None) -> Any:
        self.lines.setdefault(path, node.start_mark.line + 1)
        self.nodes[path] = node
        if isinstance(node, yaml.MappingNode):
            return self._mapping(node, path)
        if isinstance(node, yaml.SequenceNode):
            return [self.read(item, (*path, i)) for i, item in enumerate(node.value)]
        if node.tag == "tag:yaml.org,2002:null":
            return None
        if field in _TYPED_FIELDS:
            return self._constructor.construct_object(node, deep=True)
        return node.value

    def _mapping(self, node: yaml.MappingNode, path: Loc) -> dict[str, Any]:
        out: dict[str, Any] = {}
        key_lines: dict[str, int] = {}
        merged: list[tuple[yaml.Node, yaml.Node]] = []
        for key_node, value_node in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                # `<<: *defaults`: entries from the anchor, overridden by explicit keys.
                sources = value_node.value if isinstance(value_node, yaml.SequenceNode) else [value_node]
                for src in sources:
                    if isinstance(src, yaml.MappingNode):
                        merged.extend(src.value)
                continue
            if not isinstance(key_node, yaml.ScalarNode):
                self._problem(key_node.start_mark.line + 1, "a key must be a plain name")
                continue
            key = key_node.value
            line = key_node.start_mark.line + 1
            if key in key_lines:
                self._problem(line, f"duplicate key '{key}' (also on line {key_lines[key]})")
                continue
            key_lines[key] = line
            self.lines[(*path, key)] = line
            out[key] = self.read(value_node, (*path, key), field=key)
        for key_node, value_node in merged:
            key = key_node.value
            if isinstance(key_node, yaml.ScalarNode) and key not in out:
                self.lines[(*path, key)] = key_node.start_mark.line + 1
                out[key] = self.read(value_node, (*path, key), field=key)
        return out

    def line_of(self, loc: Loc) -> int | None:
        # Missing fields have no line of their own: point at the nearest enclosing entry.
        while loc:
            if loc in self.lines:
                return self.lines[loc]
            loc = loc[:-1]
        return self.lines.get(())

    def _problem(self, line: int | None, message: str) -> None:
        self.problems.append(CatalogProblem(self.file, line, message))


def _same_path(a: str | Path, b: str | Path) -> bool:
    return Path(a).expanduser().resolve() == Path(b).expanduser().resolve()


def load_catalog(path: str | Path | None = None, *, must_exist: bool | None = None) -> Catalog:
    """Load and check the catalog at `path` (default `templates.yml`).

    A missing file is an empty catalog when it is the default path (nobody asked for
    templates) and an error when it was configured explicitly. `must_exist` overrides that.
    Raises `CatalogError` listing every problem, each as `file:line: problem`.
    """
    target = Path(path) if path is not None else Path(DEFAULT_CATALOG_PATH)
    file = str(path) if path is not None else DEFAULT_CATALOG_PATH
    if must_exist is None:
        must_exist = path is not None and not _same_path(target, DEFAULT_CATALOG_PATH)
    try:
        text = target.read_text(encoding="utf-8")
    except FileNotFoundError:
        if must_exist:
            raise CatalogError([CatalogProblem(file, None, "file not found")]) from None
        return Catalog()
    except UnicodeDecodeError:
        raise CatalogError([CatalogProblem(file, None, "not UTF-8 text")]) from None
    except OSError as exc:
        raise CatalogError([CatalogProblem(file, None, f"cannot read: {exc.strerror or exc}")]) from None
    return parse_catalog(text, file)


def parse_catalog(text: str, file: str = DEFAULT_CATALOG_PATH) -> Catalog:
    """Check catalog YAML `text`; `file` is only used in the problem messages."""
    root = _compose(text, file)
    if root is None:
        return Catalog()  # an empty (or all-comments) file
    reader = _Reader(file)
    templates: list[TemplateDef] = []
    first_line: dict[str, int | None] = {}
    for i, raw in enumerate(_raw_templates(reader, root)):
        tpl = _check_template(reader, i, raw, first_line)
        if tpl is not None:
            templates.append(tpl)
    if reader.problems:
        problems = sorted(reader.problems, key=lambda p: p.line or 0)  # stable: same line keeps order
        raise CatalogError(problems)
    return Catalog(templates=templates)


def _compose(text: str, file: str) -> yaml.Node | None:
    """The YAML node tree of `text` (None when empty); CatalogError on a syntax error."""
    try:
        return yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark else None
        problem = exc.problem or exc.context or "invalid YAML"
        raise CatalogError([CatalogProblem(file, line, f"YAML syntax error: {problem}")]) from None
    except yaml.YAMLError as exc:
        raise CatalogError([CatalogProblem(file, None, f"YAML syntax error: {exc}")]) from None


def _raw_templates(reader: _Reader, root: yaml.Node) -> list[Any]:
    """The file's `templates` list, unchecked; problems with the file's shape go to `reader`."""
    data = reader.read(root)
    if not isinstance(data, dict):
        raise CatalogError([CatalogProblem(reader.file, reader.line_of(()),
                                           "the file must be a mapping with a 'templates' list")])
    for key in data:
        if key != "templates":
            reader._problem(reader.line_of((key,)), _unknown_field(key, ["templates"]))
    raw_templates = data.get("templates") or []
    if not isinstance(raw_templates, list):
        reader._problem(reader.line_of(("templates",)), "'templates' must be a list of templates")
        return []
    return raw_templates


def _check_template(reader: _Reader, i: int, raw: Any, first_line: dict[str, int | None]) -> TemplateDef | None:
    """Template `i` of the file, or None if it has problems (each reported to `reader`)."""
    where: Loc = ("templates", i)
    name = raw.get("name") if isinstance(raw, dict) else None
    prefix = f"template '{name}': " if isinstance(name, str) and name else f"template {i + 1}: "
    if not isinstance(raw, dict):
        reader._problem(reader.line_of(where), f"{prefix}each template must be a mapping of fields")
        return None
    # Names are checked on the raw data so a duplicate shows even if the entry has other problems.
    if isinstance(name, str):
        if name in first_line:
            reader._problem(
                reader.line_of((*where, "name")),
                f"duplicate template name '{name}' (first on line {first_line[name]})",
            )
        else:
            first_line[name] = reader.line_of((*where, "name"))
    try:
        tpl = TemplateDef.model_validate(raw, context={"collect_problems": True})
    except ValidationError as exc:
        errors = exc.errors()
        for err in errors:
            loc = (*where, *err["loc"])
            reader._problem(reader.line_of(loc), prefix + _describe(err))
        # Also the checks across fields, on what is left, so one run shows every problem.
        partial = _partial_template(raw, [tuple(err["loc"]) for err in errors])
        if partial is not None:
            tpl, checks = partial
            _report(reader, where, prefix, tpl, [p for check in checks for p in check(tpl)])
        return None
    _report(reader, where, prefix, tpl, tpl.problems())
    return tpl


def _report(reader: _Reader, where: Loc, prefix: str, tpl: TemplateDef, found: list[TemplateProblem]) -> None:
    for problem in found:
        line = reader.line_of((*where, *problem.loc))
        if problem.body_index is not None:
            line = _body_line(reader.nodes.get((*where, "body")), tpl.body, problem.body_index) or line
        reader._problem(line, prefix + problem.message)


Check = Callable[[TemplateDef], list[TemplateProblem]]
_SENDER_FIELDS = ("template_id", "project_id", "version", "locale", "media")


def _tainted(locs: list[tuple[Any, ...]], fields: list[str]) -> set[Any]:
    """The first loc items the errors touch; an unknown field also taints the field it resembles
    (`templat_id` must not also be reported as a missing template_id)."""
    out: set[Any] = set()
    for loc in locs:
        if not loc:
            continue
        out.add(loc[0])
        if len(loc) == 1 and isinstance(loc[0], str) and loc[0] not in fields:
            out.update(difflib.get_close_matches(loc[0], fields, n=1))
    return out


def _partial_template(
    raw: dict[str, Any], locs: list[tuple[Any, ...]]
) -> tuple[TemplateDef, list[Check]] | None:
    """A template built from the fields of `raw` that have no field error, and which of its
    cross-field checks can be trusted on it; None when nothing can (no valid sender).

    A check runs only when every field it reads is sound: the sender rules need the ids,
    locale, version and media; the variable and placeholder checks need the body and every
    variable's key and group. Fields a check does not read (a label, an example) are filled in.
    """
    top = _tainted([loc for loc in locs if loc[:1] != ("variables",) or len(loc) == 1], _TEMPLATE_FIELDS)
    if "sender" in top or not isinstance(raw.get("sender"), str):
        return None
    clean = {k: v for k, v in raw.items() if k in _TEMPLATE_FIELDS and k not in top and k != "variables"}
    clean["name"] = "x"  # the name takes no part in these checks
    body_ok = "body" not in top and isinstance(raw.get("body"), str) and bool(raw["body"].strip())
    if not body_ok:
        clean["body"] = "x"
    raw_vars = raw.get("variables") or []
    vars_ok = "variables" not in top and isinstance(raw_vars, list)
    variables: list[dict[str, Any]] = []
    for i, var in enumerate(raw_vars if vars_ok else []):
        bad = _tainted([loc[2:] or ("*",) for loc in locs if loc[:2] == ("variables", i)], _VARIABLE_FIELDS)
        if not isinstance(var, dict) or bad & {"*", "key", "group"}:
            vars_ok = False
            break
        fields = {k: v for k, v in var.items() if k in _VARIABLE_FIELDS and k not in bad}
        variables.append({**fields, "label": fields.get("label", "x")})
    clean["variables"] = variables if vars_ok else []
    try:
        tpl = TemplateDef.model_validate(clean, context={"collect_problems": True})
    except ValidationError:
        return None
    checks: list[Check] = []
    if not top & set(_SENDER_FIELDS):
        checks.append(TemplateDef.sender_problems)
    if vars_ok and body_ok:
        checks.append(TemplateDef.variable_problems)
    return tpl, checks


def catalog_from_env(environ: Mapping[str, str] | None = None) -> Catalog:
    """Load the catalog `SMS_TEMPLATES_FILE` names; an explicitly named file must exist."""
    env = os.environ if environ is None else environ
    configured = (env.get(ENV_VAR) or "").strip()
    if configured:
        return load_catalog(configured, must_exist=True)
    return load_catalog(None)


def summarize(catalog: Catalog, file: str | Path = DEFAULT_CATALOG_PATH) -> str:
    """One line per template, for `smsbot templates check`."""
    if not catalog.templates:
        return f"{file}: no templates"
    lines = [f"{file}: {len(catalog)} template(s) OK"]
    for tpl in catalog.templates:
        keys = ", ".join(v.ref for v in tpl.variables) or "no variables"
        media = ", media" if tpl.media else ""
        lines.append(f"  {tpl.name} ({tpl.sender}, {tpl.send_id}{media}): {keys}")
    return "\n".join(lines)


def _body_line(node: yaml.Node | None, body: str, index: int) -> int | None:
    # Only a literal block (`body: |`) keeps the file's line breaks, so only there can a
    # placeholder be pinned to its own line; content starts on the line after the `|`.
    if isinstance(node, yaml.ScalarNode) and node.style == "|":
        return node.start_mark.line + 2 + body.count("\n", 0, index)
    return None


_TEMPLATE_FIELDS = list(TemplateDef.model_fields)
_VARIABLE_FIELDS = list(TemplateVariable.model_fields)


def _unknown_field(field: str, allowed: list[str]) -> str:
    close = difflib.get_close_matches(field, allowed, n=1)
    return f"unknown field '{field}'" + (f" (did you mean '{close[0]}'?)" if close else "")


def _describe(err: Any) -> str:
    """A pydantic error in words an admin editing YAML can act on."""
    loc = err["loc"]
    field = str(loc[-1]) if loc else ""
    kind = err["type"]
    value = err.get("input")
    if kind == "missing":
        return f"missing field '{field}'"
    if kind == "extra_forbidden":
        return _unknown_field(field, _VARIABLE_FIELDS if "variables" in loc else _TEMPLATE_FIELDS)
    if field == "sender" and kind == "literal_error":
        if isinstance(value, str) and value in NO_TEMPLATE_SENDERS:
            return NO_TEMPLATE_SENDERS[value]
        return f"unknown sender '{value}'; templates can be sent by: {', '.join(TEMPLATE_SENDERS)}"
    if field == "group" and kind == "literal_error":
        return f"group must be Header, Body or Buttons, not '{value}'"
    if kind in ("model_type", "model_attributes_type"):
        if "variables" in loc and isinstance(loc[-1], int):
            return f"variable {loc[-1] + 1} must be a mapping of fields (key, label, ...)"
        return f"{field or 'entry'} must be a mapping of fields"
    message = err["msg"].removeprefix("Value error, ")
    if "variables" in loc and isinstance(loc[-1], int):
        return f"variable {loc[-1] + 1}: {message}"
    return f"{field}: {message}" if field else message


# --------------------------------------------------------------------------- values


def _normalize(tpl: TemplateDef, values: Mapping[str, str]) -> tuple[dict[str, str], str | None, dict[str, str]]:
    """Map typed keys onto variable refs -> (by ref, media URL, errors for unknown keys)."""
    by_ref: dict[str, str] = {}
    media: str | None = None
    errors: dict[str, str] = {}
    for key, value in values.items():
        text = "" if value is None else str(value).strip()
        if key.upper() == MEDIA_KEY:
            media = text or None
            continue
        ref = tpl.placeholder_ref(key)  # `1` -> `Body.1`, `body.1` -> `Body.1` for gswa
        if tpl.variable(ref) is None:
            takes = ", ".join(v.ref for v in tpl.variables)
            errors[key] = f"Unknown variable; {tpl.name} takes: {takes}" if takes else (
                f"Unknown variable; {tpl.name} takes no variables"
            )
            continue
        if ref in by_ref:
            errors[key] = f"Given twice (as {ref})"
            continue
        by_ref[ref] = text
    return by_ref, media, errors


def validate_values(
    tpl: TemplateDef, values: Mapping[str, str], media_url: str | None = None
) -> dict[str, str]:
    """Problems with the values for `tpl`: {value key: message}; empty when they can be sent.

    Keys are variable refs (`name`, `1`, `Body.1`) plus `MEDIA_URL`; a blank value counts
    as missing.
    """
    by_ref, typed_media, errors = _normalize(tpl, values)
    for var in tpl.variables:
        value = by_ref.get(var.ref, "")
        if not value:
            if var.required:
                errors[var.ref] = f"Required: {var.label}"
        elif var.max_length and len(value) > var.max_length:
            errors[var.ref] = f"Too long: {len(value)} characters; at most {var.max_length}"
    media = (media_url or "").strip() or typed_media
    if tpl.media and not media:
        errors[MEDIA_KEY] = "Required: media URL"
    elif media and not tpl.media:
        errors[MEDIA_KEY] = "This template has no media; remove the media URL"
    elif media and not media.startswith(("http://", "https://")):
        errors[MEDIA_KEY] = "Media URL must be a public http(s) URL"
    return errors


def to_template_send(
    tpl: TemplateDef, values: Mapping[str, str], media_url: str | None = None
) -> TemplateSend:
    """The provider-shaped template for `values`; raises TemplateValuesError if they do not fit."""
    errors = validate_values(tpl, values, media_url)
    if errors:
        raise TemplateValuesError(tpl.name, errors)
    by_ref, typed_media, _ = _normalize(tpl, values)
    # Catalog order, and blank optional variables left out entirely.
    filled = [(var, by_ref[var.ref]) for var in tpl.variables if by_ref.get(var.ref)]
    variables: dict[str, Any]
    if tpl.sender == "gswa":
        variables = {}
        media = (media_url or "").strip() or typed_media
        if media:
            variables[MEDIA_KEY] = media
        for group in GROUPS:
            part = {var.key: value for var, value in filled if var.group == group}
            if part:
                variables[group] = part
    else:
        variables = {var.key: value for var, value in filled}
    if tpl.sender == "bird":
        return TemplateSend(
            id=tpl.send_id,
            variables=variables,
            project_id=tpl.bird_project_id,
            version=tpl.version,
            locale=tpl.locale,
        )
    return TemplateSend(id=tpl.send_id, variables=variables)


def render_preview(tpl: TemplateDef, values: Mapping[str, str] | None = None) -> str:
    """The body as the recipient will roughly see it; unfilled variables show as `[label]`."""
    by_ref, _, _ = _normalize(tpl, values or {})

    def fill(match: re.Match[str]) -> str:
        var = tpl.variable(tpl.placeholder_ref(match.group(1)))
        if var is None:
            return match.group(0)
        return by_ref.get(var.ref) or f"[{var.label}]"

    return _PLACEHOLDER_RE.sub(fill, tpl.body)


def example_values(tpl: TemplateDef) -> dict[str, str]:
    """The catalog's examples as values, for a sample preview."""
    return {var.ref: var.example for var in tpl.variables if var.example}


# --------------------------------------------------------------------------- command line

# Like `/sms send` (bot/commands.py): only double quotes, straight "..." or curly “...”, group
# words, and they may open anywhere in a token (`"note=two words"`, `note="two words"`).
# Apostrophes (`O'Brien`, `it’s`) and backslashes (`C:\new`) are ordinary characters.
_VALUE_TOKEN = re.compile(r'(?:"[^"]*"|“[^”]*”|[^\s"“])+')
_QUOTED = re.compile(r'"([^"]*)"|“([^”]*)”')


def split_command_values(text: str) -> list[str]:
    """Split value text into tokens, quotes removed; raises ValueError on an unclosed quote."""
    tokens: list[str] = []
    end = 0
    for match in _VALUE_TOKEN.finditer(text):
        if text[end : match.start()].strip():
            break  # an opening quote the pattern could not close
        tokens.append(_QUOTED.sub(lambda m: m.group(1) if m.group(1) is not None else m.group(2), match.group(0)))
        end = match.end()
    if text[end:].strip():
        raise ValueError("A quote is not closed; write \"note=two words\" with both quotes.")
    return tokens


def parse_command_values(args: list[str] | str) -> dict[str, str]:
    """`name=John "note=two words" Body.1=x` -> {"name": "John", "note": "two words", "Body.1": "x"}.

    `args` are the value tokens only (after the template name and the number), or that text
    as one string, split by `split_command_values`. Values are kept exactly as given: the
    text must already be Slack-unescaped (`bot.slack.commands.slack_unescape`, which the `/sms`
    router runs on the whole command) and is not unescaped again, so `&reg` or `&copy` in a
    URL stay as typed. A caller holding raw Slack text must run `slack_unescape` first.
    Raises ValueError naming the bad token.
    """
    tokens = split_command_values(args) if isinstance(args, str) else list(args)
    values: dict[str, str] = {}
    for token in tokens:
        key, eq, value = token.partition("=")  # a value may itself contain '='
        key = key.strip()
        if not eq or not key:
            raise ValueError(f"'{token[:60]}' is not key=value; write e.g. name=John")
        if not _VALUE_KEY_RE.match(key):
            raise ValueError(f"'{key[:60]}' is not a variable name; use letters, digits, _ (or Body.1 for gswa)")
        if key in values:
            raise ValueError(f"'{key}' is given twice")
        values[key] = value
    return values
