#pragma once
// Renders a Comparison (compare/compare.h) for people and for machines.
#include <string>

#include "flipless/compare/compare.h"

namespace flipless::report {

enum class CompareFormat { kText, kJson, kMarkdown, kHtml };

// Parses "text", "json", "markdown"/"md" or "html"; throws ConfigError otherwise.
CompareFormat parse_compare_format(const std::string& name);

// An aligned terminal report: metrics with 95% intervals, McNemar, flip table, per-class and
// per-slice flips, and the top negative flips with their text.
std::string render_text(const compare::Comparison& c);
// Everything in the comparison as JSON (rates as fractions; undefined values as null).
std::string render_json(const compare::Comparison& c);
// GitHub-flavoured Markdown tables.
std::string render_markdown(const compare::Comparison& c);
// One self-contained HTML page with SVG charts; no scripts or network needed to view it.
std::string render_html(const compare::Comparison& c);

std::string render(const compare::Comparison& c, CompareFormat format);

}  // namespace flipless::report
