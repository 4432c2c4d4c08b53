#!/usr/bin/env python3
"""Render the alert rules, their promtool tests and the Grafana dashboards for one environment.

    python3 alerts/render.py [--config FILE] [--set KEY=VALUE ...] OUT_DIR
    python3 alerts/render.py --list-thresholds

Writes OUT_DIR/alerts/runbook-exporter.{rules,records}.yml, OUT_DIR/alerts/tests/*.test.yml and
OUT_DIR/dashboards/*.json. FILE is a JSON object with any of the keys of alerts/mixin.json (the
defaults); the keys it leaves out keep their defaults. The shipped files are the rendering of
alerts/mixin.json: they stay hand-edited YAML and JSON, and this script transforms them.

  job                   the Prometheus scrape job of the exporter: replaces job="<default>" in the
                        rules (ExporterDown, ExporterAbsent), the tests and the dashboards.
  selectors             {"label": "value", ...}: matchers added to every series selector of the
                        rules, the recording rules, the tests' queries and the dashboards; every
                        alert and recording rule also gets them as labels, and every test input
                        series carries them (an expected alert or sample shows them too).
  thresholds            {"Alert": number} or {"Alert/severity": number}: the number on the right of
                        the alert's only top-level comparison with a literal. --list-thresholds
                        shows which alerts have one.
  runbook_base_url      replaces the default base of every runbook_url into the runbook.
  diagnostics_base_url  the same for docs/diagnostics.md; left out (or null) while runbook_base_url
                        is given: the file next to the runbook (last path segment "diagnostics",
                        "diagnostics.md" if the runbook's ends in ".md").
  datasource            {"uid": ..., "name": ...}: the data source the dashboards' `datasource`
                        variable selects when opened; null keeps Grafana's default data source.

A bad configuration is refused with the file, the line and the field, and nothing is written.
Python 3 standard library only.
"""

import json
import os
import re
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
DEFAULTS = os.path.join(HERE, "mixin.json")
RULE_FILES = ["runbook-exporter.rules.yml", "runbook-exporter.records.yml"]
KEYS = ["job", "selectors", "thresholds", "runbook_base_url", "diagnostics_base_url", "datasource"]
RESERVED_LABELS = {"instance", "target", "severity", "alertname", "__name__"}
KEYWORDS = {"and", "or", "unless", "by", "without", "on", "ignoring", "group_left", "group_right", "bool",
            "offset", "inf", "nan"}
GROUPING = {"by", "without", "on", "ignoring", "group_left", "group_right"}
COMPARISONS = ["==", "!=", ">=", "<=", ">", "<"]


class ConfigError(Exception):
    pass


class RenderError(Exception):
    pass


class FieldError(Exception):
    """A configuration field that does not fit the shipped files: (field, message)."""


# ---------------------------------------------------------------- configuration

def line_of(text, key):
    """The line of the first `"key":` in a JSON text (1 when there is none)."""
    m = re.search(r'"%s"\s*:' % re.escape(key), text)
    return text.count("\n", 0, m.start()) + 1 if m else 1


def load_json(path):
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
    except OSError as e:
        raise ConfigError("%s: %s" % (path, e.strerror))
    try:
        value = json.loads(text)
    except json.JSONDecodeError as e:
        raise ConfigError("%s:%d:%d: not valid JSON: %s" % (path, e.lineno, e.colno, e.msg))
    if not isinstance(value, dict):
        raise ConfigError("%s:1: the configuration must be a JSON object" % path)
    return value, text


def fail(path, text, field, message):
    key = field.split(".", 1)[-1]
    where = path if path == "--set" else "%s:%d" % (path, line_of(text, key))
    raise ConfigError("%s: %s: %s" % (where, field, message))


def check_url(path, text, field, url):
    if not isinstance(url, str) or not re.match(r"^https?://[^\s\"'\\#|]+$", url):
        fail(path, text, field, "must be an http:// or https:// URL without spaces, quotes, backslashes, | or #: %s"
             % json.dumps(url))
    return url.rstrip("/")


def diagnostics_next_to(runbook):
    rest = runbook.split("://", 1)[1]
    directory = runbook.rsplit("/", 1)[0] if "/" in rest else runbook
    name = "diagnostics.md" if runbook.rsplit("/", 1)[-1].endswith(".md") and "/" in rest else "diagnostics"
    return directory + "/" + name


def validate(path, text, user, defaults):
    """The effective configuration: `user` (from `path`, JSON `text`) over `defaults`, checked."""
    for key in user:
        if key not in KEYS:
            fail(path, text, key, "unknown field (known: %s)" % ", ".join(KEYS))
    cfg = dict(defaults)
    cfg.update({k: v for k, v in user.items() if v is not None or k in ("datasource", "diagnostics_base_url")})
    if "runbook_base_url" in user and user.get("diagnostics_base_url") is None:
        cfg["diagnostics_base_url"] = None

    job = cfg["job"]
    if not isinstance(job, str) or not re.match(r"^[A-Za-z0-9_.:/-]+$", job):
        fail(path, text, "job", "must be a non-empty string of letters, digits and _ . : / -: %s" % json.dumps(job))

    selectors = cfg["selectors"]
    if not isinstance(selectors, dict):
        fail(path, text, "selectors", "must be an object of label names to values")
    for name, value in selectors.items():
        field = "selectors.%s" % name
        if not re.match(r"^[A-Za-z_][A-Za-z0-9_]*$", name) or name.startswith("__"):
            fail(path, text, field, "not a Prometheus label name")
        if name in RESERVED_LABELS:
            fail(path, text, field, "the rules group and alert by this label; it cannot be a fixed selector")
        if not isinstance(value, str) or not re.match(r"^[^\"'\\\n\r\t{}]+$", value):
            fail(path, text, field, "must be a non-empty string without quotes, backslashes, braces or "
                 "control characters: %s" % json.dumps(value))
        if name == "job" and value != job:
            fail(path, text, field, "must equal `job` (%s): set the scrape job there" % json.dumps(job))

    thresholds = cfg["thresholds"]
    if not isinstance(thresholds, dict):
        fail(path, text, "thresholds", "must be an object of alert names to numbers")
    for name, value in thresholds.items():
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            fail(path, text, "thresholds.%s" % name, "must be a number: %s" % json.dumps(value))

    cfg["runbook_base_url"] = check_url(path, text, "runbook_base_url", cfg["runbook_base_url"])
    if cfg["diagnostics_base_url"] is None:
        cfg["diagnostics_base_url"] = diagnostics_next_to(cfg["runbook_base_url"])
    cfg["diagnostics_base_url"] = check_url(path, text, "diagnostics_base_url", cfg["diagnostics_base_url"])

    ds = cfg["datasource"]
    if ds is not None:
        if not isinstance(ds, dict) or set(ds) - {"uid", "name"} or not isinstance(ds.get("uid"), str) \
                or not ds["uid"] or not isinstance(ds.get("name", ds["uid"]), str):
            fail(path, text, "datasource", 'must be null or {"uid": "...", "name": "..."} (uid required)')
    return cfg


# ---------------------------------------------------------------- PromQL

def skip_string(s, i):
    quote = s[i]
    i += 1
    while i < len(s) and s[i] != quote:
        i += 2 if s[i] == "\\" and quote != "`" else 1
    return i + 1


def skip_group(s, i, open_, close):
    """Index after the bracket group starting at s[i] == open_ (strings inside skipped)."""
    depth = 0
    while i < len(s):
        c = s[i]
        if c in "\"'`":
            i = skip_string(s, i)
            continue
        if c == open_:
            depth += 1
        elif c == close:
            depth -= 1
            if depth == 0:
                return i + 1
        i += 1
    raise RenderError("unbalanced %s in %r" % (open_, s))


def matcher_labels(body):
    """Label names matched in a selector's brace body."""
    return set(re.findall(r"([A-Za-z_][A-Za-z0-9_]*)\s*(?:=~|!~|!=|=)", re.sub(r'"(?:[^"\\]|\\.)*"', '""', body)))


def add_matchers(expr, selectors):
    """`expr` with `label="value"` added to every vector selector that does not match that label yet."""
    if not selectors:
        return expr
    out = []
    i = 0
    n = len(expr)

    def extend_braces(start):
        """Copy the brace group at expr[start] with the missing matchers added; the index after it."""
        end = skip_group(expr, start, "{", "}")
        body = expr[start + 1:end - 1]
        have = matcher_labels(body)
        extra = ",".join('%s="%s"' % (k, v) for k, v in selectors.items() if k not in have)
        if extra:
            sep = "," if body.strip() and not body.rstrip().endswith(",") else ""
            out.append("{" + body.rstrip() + sep + extra + body[len(body.rstrip()):] + "}")
        else:
            out.append(expr[start:end])
        return end

    while i < n:
        c = expr[i]
        if c in "\"'`":
            j = skip_string(expr, i)
            out.append(expr[i:j])
            i = j
        elif c == "#":  # a PromQL comment, to the end of the line
            j = expr.find("\n", i)
            j = n if j < 0 else j
            out.append(expr[i:j])
            i = j
        elif c == "[":
            j = skip_group(expr, i, "[", "]")
            out.append(expr[i:j])
            i = j
        elif c == "{":
            i = extend_braces(i)
        elif c == "$":
            m = re.match(r"\$(\{[^}]*\}|\w+)", expr[i:])
            j = i + (len(m.group(0)) if m else 1)
            out.append(expr[i:j])
            i = j
        elif c.isdigit() or (c == "." and i + 1 < n and expr[i + 1].isdigit()):
            m = re.match(r"[0-9.]+(?:[eE][+-]?[0-9]+)?[A-Za-z0-9_]*", expr[i:])
            out.append(m.group(0))
            i += len(m.group(0))
        elif c.isalpha() or c in "_:":
            m = re.match(r"[A-Za-z_:][A-Za-z0-9_:]*", expr[i:])
            word = m.group(0)
            j = i + len(word)
            out.append(word)
            k = j
            while k < n and expr[k].isspace():
                k += 1
            if word.lower() in KEYWORDS:
                if word in GROUPING and k < n and expr[k] == "(":
                    end = skip_group(expr, k, "(", ")")
                    out.append(expr[j:end])
                    j = end
                i = j
            elif k < n and (expr[k] == "(" or re.match(r"(by|without)\s*\(", expr[k:])):
                i = j  # a function or an aggregation (`sum by (...) (...)`)
            elif k < n and expr[k] == "{":
                out.append(expr[j:k])
                i = extend_braces(k)
            else:
                out.append("{" + ",".join('%s="%s"' % kv for kv in selectors.items()) + "}")
                i = j
        else:
            out.append(c)
            i += 1
    return "".join(out)


def top_level(expr):
    """(index, text) of the top-level tokens of `expr`: operators and words outside any brackets."""
    tokens = []
    i = 0
    while i < len(expr):
        c = expr[i]
        if c in "\"'`":
            i = skip_string(expr, i)
        elif c == "#":
            j = expr.find("\n", i)
            i = len(expr) if j < 0 else j
        elif c in "([{":
            i = skip_group(expr, i, c, {"(": ")", "[": "]", "{": "}"}[c])
        elif c.isalnum() or c in "_:.":
            m = re.match(r"[A-Za-z0-9_:.]+(?:[eE][+-]?[0-9]+)?", expr[i:])
            tokens.append((i, m.group(0)))
            i += len(m.group(0))
        elif c.isspace():
            i += 1
        else:
            op = next((o for o in COMPARISONS + ["=~", "!~"] if expr.startswith(o, i)), c)
            tokens.append((i, op))
            i += len(op)
    return tokens


def is_number(word):
    return re.match(r"^[0-9]*\.?[0-9]+(?:[eE][+-]?[0-9]+)?$", word) is not None


def find_threshold(expr):
    """(start, end) of the alert's threshold literal in `expr`, or a RenderError saying why there is none.

    The threshold is the number right after a comparison at the top level (modifiers like `bool`
    skipped) that ends the comparison's right-hand side, in the operands joined by and/or (the
    right side of `unless` is a filter, not a condition). Exactly one must exist."""
    tokens = top_level(expr)
    found = []
    in_unless = False
    for t, (pos, word) in enumerate(tokens):
        if word in ("and", "or"):
            in_unless = False
        elif word == "unless":
            in_unless = True
        if in_unless or word not in COMPARISONS:
            continue
        k = t + 1
        while k < len(tokens) and tokens[k][1] == "bool":
            k += 1
        if k >= len(tokens) or not is_number(tokens[k][1]):
            continue
        after = tokens[k + 1][1] if k + 1 < len(tokens) else None
        if after is None or after in ("and", "or", "unless"):
            found.append((tokens[k][0], tokens[k][0] + len(tokens[k][1])))
    if len(found) != 1:
        literals = [expr[a:b] for a, b in found]
        raise RenderError("no single threshold: %s" % (
            "top-level comparisons with the literals %s" % ", ".join(literals) if literals
            else "no top-level comparison with a number literal"))
    return found[0]


def format_number(value):
    if isinstance(value, int) or float(value).is_integer() and abs(value) < 1e15:
        return str(int(value))
    return repr(float(value))


# ---------------------------------------------------------------- YAML text (line based, comments kept)

def indent_of(line):
    return len(line) - len(line.lstrip(" "))


def block_end(lines, start, indent):
    """Index after the lines following `start` that are blank or indented deeper than `indent`."""
    j = start + 1
    while j < len(lines) and (not lines[j].strip() or indent_of(lines[j]) > indent):
        j += 1
    while j > start + 1 and not lines[j - 1].strip():
        j -= 1
    return j


RULE_START = re.compile(r"^(\s*)- (alert|record): *(\S+)\s*$")
KEY = re.compile(r"^(\s*)(expr|labels|for|annotations|runbook_url):(.*)$")


def rule_spans(lines):
    """[(name, kind, first line, end line, key indent)] of every rule in a rules file."""
    spans = []
    for i, line in enumerate(lines):
        m = RULE_START.match(line)
        if m:
            indent = len(m.group(1)) + 2
            spans.append([m.group(3).strip("'\""), m.group(2), i, block_end(lines, i, len(m.group(1))), indent])
    return spans


def expr_span(lines, rule):
    """(first, end, inline) of the rule's `expr:` value: an inline value or a block scalar's lines."""
    _, _, start, end, indent = rule
    for i in range(start + 1, end):
        if indent_of(lines[i]) == indent and lines[i].strip().startswith("expr:"):
            value = lines[i].strip()[len("expr:"):].strip()
            if value in ("|", "|-", ">", ">-"):
                return i + 1, block_end(lines, i, indent), False
            if value[:1] in "'\"":
                raise RenderError("line %d: a quoted expr; write it plain or as a | block" % (i + 1))
            return i, i + 1, True
    raise RenderError("line %d: rule %s has no expr" % (start + 1, rule[0]))


def label_lines(selectors, indent):
    return ['%s%s: "%s"' % (" " * indent, k, v) for k, v in selectors.items()]


def severity_of(lines, rule):
    for i in range(rule[2], rule[3]):
        m = re.match(r"^\s*severity:\s*['\"]?(\w+)", lines[i])
        if m:
            return m.group(1)
    return ""


def render_rules(name, text, cfg, defaults, thresholds, used, moved):
    lines = text.split("\n")
    edits = []  # (first, end, new lines), applied bottom-up
    names = [r[0] for r in rule_spans(lines) if r[1] == "alert"]
    for rule in rule_spans(lines):
        rname, kind, start, end, indent = rule
        first, stop, inline = expr_span(lines, rule)
        if inline:
            key, value = lines[first].split("expr:", 1)
            expr = value.strip()
            prefix = key + "expr: "
        else:
            expr = "\n".join(lines[first:stop])
        if kind == "alert":
            rid = "%s/%s" % (rname, severity_of(lines, rule))
            for key in (rid, rname):
                if key in thresholds:
                    used.add(key)
                    if key == rname and names.count(rname) > 1:
                        raise FieldError("thresholds.%s" % key, "%s has %d alerts in %s: name one as %s"
                                         % (rname, names.count(rname), name, rid))
                    try:
                        a, b = find_threshold(expr)
                    except RenderError as e:
                        raise FieldError("thresholds.%s" % key, "alert %s in %s: %s" % (rid, name, e))
                    if float(expr[a:b]) != float(thresholds[key]):
                        moved.append((rname, float(expr[a:b]), thresholds[key]))
                        expr = expr[:a] + format_number(thresholds[key]) + expr[b:]
        expr = expr.replace('job="%s"' % defaults["job"], 'job="%s"' % cfg["job"])
        expr = add_matchers(expr, cfg["selectors"])
        new = [prefix + expr] if inline else expr.split("\n")
        edits.append((first, stop, new))
        if cfg["selectors"]:
            label_at = next((i for i in range(start, end)
                             if indent_of(lines[i]) == indent and lines[i].strip() == "labels:"), None)
            if label_at is not None:
                edits.append((label_at + 1, label_at + 1, label_lines(cfg["selectors"], indent + 2)))
            elif kind == "record":
                edits.append((start + 1, start + 1, [" " * indent + "labels:"] + label_lines(cfg["selectors"],
                                                                                               indent + 2)))
            else:
                raise RenderError("%s: line %d: alert %s has no labels: block" % (name, start + 1, rname))
    for first, stop, new in sorted(edits, key=lambda e: (e[0], e[1]), reverse=True):
        lines[first:stop] = new
    return rebase_urls("\n".join(lines), cfg, defaults)


def rebase_urls(text, cfg, defaults):
    for key in ("runbook_base_url", "diagnostics_base_url"):
        text = text.replace('runbook_url: "%s#' % defaults[key], 'runbook_url: "%s#' % cfg[key])
    return text


SERIES = re.compile(r"""^(\s*-?\s*(?:series|labels):\s*)(['"])(.*)\2(\s*(?:#.*)?)$""")


def render_series(series, cfg, defaults):
    """A promtool series text `name{a="b"}` with the job renamed and the selectors added as labels."""
    series = series.replace('job="%s"' % defaults["job"], 'job="%s"' % cfg["job"])
    if not cfg["selectors"]:
        return series
    m = re.match(r"^([A-Za-z_:][A-Za-z0-9_:]*)?\s*(\{.*\})?\s*$", series)
    if not m:
        raise RenderError("not a series: %r" % series)
    body = (m.group(2) or "{}")[1:-1]
    have = matcher_labels(body)
    extra = ",".join('%s="%s"' % kv for kv in cfg["selectors"].items() if kv[0] not in have)
    if not extra:
        return series
    return "%s{%s}" % (m.group(1) or "", body + ("," if body.strip() else "") + extra)


def render_tests(name, text, cfg, defaults):
    lines = text.split("\n")
    out = []
    for i, line in enumerate(lines):
        m = SERIES.match(line)
        if m:
            quote = m.group(2)
            value = m.group(3).replace("''", "'") if quote == "'" else m.group(3).replace('\\"', '"')
            try:
                value = render_series(value, cfg, defaults)
            except RenderError as e:
                raise RenderError("%s: line %d: %s" % (name, i + 1, e))
            value = value.replace("'", "''") if quote == "'" else value.replace('"', '\\"')
            out.append(m.group(1) + quote + value + quote + m.group(4))
            continue
        job = re.match(r"""^(\s*job:\s*)(['"]?)%s\2(\s*)$""" % re.escape(defaults["job"]), line)
        if job:
            line = job.group(1) + job.group(2) + cfg["job"] + job.group(2) + job.group(3)
        out.append(line)
        if cfg["selectors"] and re.match(r"^\s*(?:-\s+)?exp_labels:\s*$", line):
            column = line.index("exp_labels")
            block = lines[i + 1:block_end(lines, i, column)]
            have = {l.split(":")[0].strip() for l in block if l.strip()}
            inner = indent_of(block[0]) if block else column + 2
            out.extend(label_lines({k: v for k, v in cfg["selectors"].items() if k not in have}, inner))
        elif cfg["selectors"] and re.match(r"^\s*(?:-\s+)?exp_labels:\s*\S", line):
            raise RenderError("%s: line %d: write exp_labels as a block, one label a line" % (name, i + 1))
    text = "\n".join(out)
    # The annotations show the job as "job NAME" ({{ $labels.job }}), also across a line break.
    text = re.sub(r"\b(job\s+)%s\b" % re.escape(defaults["job"]), lambda m: m.group(1) + cfg["job"], text)
    return rebase_urls(text, cfg, defaults)


# ---------------------------------------------------------------- dashboards

def render_grafana_query(query, selectors):
    m = re.match(r"^(\s*label_values\()(.*)(,\s*\w+\s*\)\s*)$", query, re.S)
    if m:
        return m.group(1) + add_matchers(m.group(2), selectors) + m.group(3)
    if re.match(r"^\s*label_values\(\s*\w+\s*\)\s*$", query):
        return query
    m = re.match(r"^(\s*(?:query_result|metrics)\()(.*)(\)\s*)$", query, re.S)
    if m:
        return m.group(1) + add_matchers(m.group(2), selectors) + m.group(3)
    return add_matchers(query, selectors)


def move_threshold_lines(panels, moved):
    """The dashed threshold line of a panel that names a moved alert in its description follows the alert."""
    for panel in panels:
        move_threshold_lines(panel.get("panels", []), moved)
        steps = panel.get("fieldConfig", {}).get("defaults", {}).get("thresholds", {}).get("steps", [])
        for alert, old, new in moved:
            if re.search(r"\b%s\b" % re.escape(alert), panel.get("description", "")):
                for step in steps:
                    if isinstance(step.get("value"), (int, float)) and float(step["value"]) == old:
                        step["value"] = new


def render_dashboard(name, text, cfg, defaults, moved):
    board = json.loads(text)
    move_threshold_lines(board.get("panels", []), moved)
    job_from, job_to = 'job="%s"' % defaults["job"], 'job="%s"' % cfg["job"]

    def promql(expr):
        return add_matchers(expr.replace(job_from, job_to), cfg["selectors"])

    def walk(node):
        if isinstance(node, dict):
            for k, v in node.items():
                if k == "expr" and isinstance(v, str):
                    node[k] = promql(v)
                else:
                    walk(v)
        elif isinstance(node, list):
            for v in node:
                walk(v)

    walk(board.get("panels", []))
    walk(board.get("rows", []))
    walk(board.get("annotations", {}))
    for var in board.get("templating", {}).get("list", []):
        if var.get("type") == "query":
            for k in ("definition", "query"):
                if isinstance(var.get(k), str):
                    var[k] = render_grafana_query(var[k].replace(job_from, job_to), cfg["selectors"])
            if isinstance(var.get("query"), dict) and isinstance(var["query"].get("query"), str):
                var["query"]["query"] = render_grafana_query(var["query"]["query"].replace(job_from, job_to),
                                                             cfg["selectors"])
        elif var.get("type") == "datasource" and var.get("name") == "datasource" and cfg["datasource"]:
            ds = cfg["datasource"]
            var["current"] = {"selected": True, "text": ds.get("name", ds["uid"]), "value": ds["uid"]}
    if board == json.loads(text):
        return text
    return json.dumps(board, indent=2, ensure_ascii=False) + "\n"


# ---------------------------------------------------------------- main

def read(rel):
    with open(os.path.join(ROOT, rel), encoding="utf-8") as f:
        return f.read()


def listing(rel, suffix):
    return sorted(os.path.join(rel, f) for f in os.listdir(os.path.join(ROOT, rel)) if f.endswith(suffix))


def render(cfg, defaults):
    """{relative path: text} of every rendered file."""
    thresholds, used, moved = cfg["thresholds"], set(), []
    out = {}
    for f in RULE_FILES:
        rel = os.path.join("alerts", f)
        try:
            out[rel] = render_rules(rel, read(rel), cfg, defaults, thresholds, used, moved)
        except RenderError as e:
            raise RenderError("%s: %s" % (rel, e))
    for key in thresholds:
        if key not in used:
            raise FieldError("thresholds.%s" % key, "no alert of that name (and severity) in alerts/%s"
                             % RULE_FILES[0])
    for rel in listing("alerts/tests", ".test.yml"):
        out[rel] = render_tests(rel, read(rel), cfg, defaults)
    for rel in listing("dashboards", ".json"):
        out[rel] = render_dashboard(rel, read(rel), cfg, defaults, moved)
    return out


def list_thresholds():
    text = read(os.path.join("alerts", RULE_FILES[0]))
    lines = text.split("\n")
    for rule in rule_spans(lines):
        if rule[1] != "alert":
            continue
        first, stop, inline = expr_span(lines, rule)
        expr = lines[first].split("expr:", 1)[1].strip() if inline else "\n".join(lines[first:stop])
        rid = "%s/%s" % (rule[0], severity_of(lines, rule))
        try:
            a, b = find_threshold(expr)
            print("%-40s %s" % (rid, expr[a:b]))
        except RenderError as e:
            print("%-40s -  (%s)" % (rid, e))


def main(argv):
    args = argv[1:]
    if args == ["--list-thresholds"]:
        list_thresholds()
        return 0
    config, sets, rest = None, [], []
    while args:
        a = args.pop(0)
        if a == "--config" and args:
            config = args.pop(0)
        elif a == "--set" and args:
            sets.append(args.pop(0))
        elif a.startswith("-"):
            rest = []
            break
        else:
            rest.append(a)
    if len(rest) != 1:
        print("usage: %s [--config FILE] [--set KEY=VALUE ...] OUT_DIR\n       %s --list-thresholds"
              % (argv[0], argv[0]), file=sys.stderr)
        return 2
    out_dir = rest[0]
    try:
        defaults, _ = load_json(DEFAULTS)
        defaults = validate(DEFAULTS, _, defaults, {k: None for k in KEYS})
        user, text, path = {}, "", "--set"
        if config:
            user, text = load_json(config)
            path = config
        for s in sets:
            key, sep, value = s.partition("=")
            if not sep or key not in ("job", "runbook_base_url", "diagnostics_base_url"):
                raise ConfigError("--set %s: KEY=VALUE with KEY one of job, runbook_base_url, "
                                  "diagnostics_base_url" % s)
            user[key] = value
            text += '"%s": ' % key
        cfg = validate(path, text, user, defaults)
        try:
            files = render(cfg, defaults)
        except FieldError as e:
            fail(path, text, *e.args)
    except (ConfigError, RenderError) as e:
        print("%s: %s" % (os.path.basename(argv[0]), e), file=sys.stderr)
        return 2
    for rel, content in files.items():
        target = os.path.join(out_dir, rel)
        os.makedirs(os.path.dirname(target), exist_ok=True)
        with open(target + ".tmp", "w", encoding="utf-8") as f:
            f.write(content)
        os.replace(target + ".tmp", target)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
