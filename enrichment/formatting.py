"""The enriched text of a record: its values with their semantic labels, its related entities
one hop away and its entity type's category, so the vector carries the record's place in the
entity graph ("Support communication — customer segment: Enterprise, … — message content: …").

Missing values render as absent, never as "None".
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from jinja2 import ChainableUndefined, TemplateSyntaxError
from jinja2.sandbox import SandboxedEnvironment

from enrichment.config import SourceConfig
from enrichment.errors import InvalidInput


def _present(value: Any) -> bool:
    return (
        value is not None
        and not isinstance(value, ChainableUndefined)
        and str(value).strip() != ""  # a blank string is as absent as a missing one
    )


def labelled(value: Any, label: str) -> str:
    """``label: value`` when there is a value, else nothing."""
    return f"{label}: {value}" if _present(value) else ""


def join_present(values: Sequence[Any], separator: str = ", ") -> str:
    return separator.join(str(value) for value in values if _present(value))


def _finalize(value: Any) -> Any:
    """A None that reaches the output (``record.get('x')``, ``none``) renders as nothing."""
    return "" if value is None else value


_ENVIRONMENT = SandboxedEnvironment(
    undefined=ChainableUndefined,
    finalize=_finalize,
    autoescape=False,
    trim_blocks=True,
    lstrip_blocks=True,
)
_ENVIRONMENT.filters["labelled"] = labelled
_ENVIRONMENT.filters["join_present"] = join_present


def _without_nulls(value: Any) -> Any:
    """None becomes undefined (renders as nothing); nested values are cleaned too."""
    if isinstance(value, Mapping):
        return {k: _without_nulls(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_without_nulls(v) for v in value if v is not None]
    return value


def _label(source: SourceConfig, name: str) -> str:
    return source.entity.attributes.get(name, name.replace("_", " ").replace(".", " "))


def _scalar(value: Any) -> str:
    if isinstance(value, bool):
        return "yes" if value else "no"
    return str(value).strip()


class TextFormatter:
    """Renders a source's records; the template is compiled once and checked at start-up."""

    def __init__(self, source: SourceConfig) -> None:
        self.source = source
        self.template = None
        if source.template is not None:
            try:
                self.template = _ENVIRONMENT.from_string(source.template)
            except TemplateSyntaxError as err:
                raise InvalidInput(
                    f"sources[{source.name}].template",
                    f"not a valid template: {err.message} (line {err.lineno})",
                ) from None

    def render(
        self,
        record: Mapping[str, Any],
        related: Mapping[str, Any],
        *,
        workspace_id: str,
    ) -> str:
        record = _without_nulls(record)
        related = _without_nulls(related)
        if self.template is not None:
            rendered = self.template.render(
                record=record,
                related=related,
                entity=self.source.entity.model_dump(),
                workspace=workspace_id,
                **related,
            )
            return " ".join(rendered.split())
        return self._default(record, related)

    def _default(self, record: Mapping[str, Any], related: Mapping[str, Any]) -> str:
        """Category — labelled context values — the content column (the last of ``columns``)."""
        source = self.source
        parts: list[str] = []
        for relation in source.related:
            value = related.get(relation.name)
            rows = value if isinstance(value, list) else [value] if value else []
            rendered_rows = []
            for row in rows:
                fields = [
                    labelled(_scalar(row[f]), _label(source, f"{relation.name}.{f}"))
                    for f in relation.fields
                    if f in row
                ]
                if any(fields):  # a row whose fields are all missing is absent too
                    rendered_rows.append(join_present(fields))
            if relation.many and rendered_rows:
                parts.append(f"{_label(source, relation.name)}: " + "; ".join(rendered_rows))
            elif rendered_rows:
                parts.append(rendered_rows[0])
        *context_columns, content_column = source.columns
        for column in context_columns:
            if column in record:
                parts.append(labelled(_scalar(record[column]), _label(source, column)))
        content = record.get(content_column)
        sections = [source.entity.category, join_present(parts)]
        if _present(content):
            sections.append(labelled(_scalar(content), _label(source, content_column)))
        return " — ".join(section for section in sections if section)
