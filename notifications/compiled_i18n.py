"""Translation at template compile time.

Each language has its own Jinja2 environment, so a `{% trans %}` block can be
translated once, when the template is compiled, instead of on every render: the
translated text becomes template data, and only its variables are expressions
(escaped as usual under autoescape). Plural and context forms fall back to Jinja2's
runtime gettext. Extraction (`pybabel extract`) sees the same `{% trans %}` blocks."""

from __future__ import annotations

import re
from typing import Any

from jinja2 import nodes
from jinja2.ext import InternationalizationExtension

_PLACEHOLDER = re.compile(r"%\((\w+)\)s|%%")


class CompiledTranslations(InternationalizationExtension):
    #: set on the environment before templates are compiled
    catalog_attribute = "compiled_translations"

    def _make_node(
        self,
        singular: str,
        plural: str | None,
        context: str | None,
        variables: dict[str, nodes.Expr],
        plural_expr: nodes.Expr | None,
        vars_referenced: bool,
        num_called_num: bool,
    ) -> nodes.Output:
        catalog: Any = getattr(self.environment, self.catalog_attribute, None)
        if catalog is None or plural is not None or context is not None:
            return super()._make_node(
                singular, plural, context, variables, plural_expr, vars_referenced, num_called_num
            )
        text = catalog.gettext(singular)
        if not vars_referenced:
            # Jinja2 doubles a literal % in a block without variables.
            text = text.replace("%%", "%")
            return nodes.Output([nodes.TemplateData(text)])
        parts: list[nodes.Expr] = []
        position = 0
        for match in _PLACEHOLDER.finditer(text):
            if match.start() > position:
                parts.append(nodes.TemplateData(text[position : match.start()]))
            if match.group(0) == "%%":
                parts.append(nodes.TemplateData("%"))
            else:
                parts.append(variables[match.group(1)])
            position = match.end()
        if position < len(text):
            parts.append(nodes.TemplateData(text[position:]))
        return nodes.Output(parts)
