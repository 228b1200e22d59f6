"""Fleet inventories: which hosts exist, and which hosts a guest may move to (its groups).

Three formats, recognised by their content:

* migcheck's own YAML::

      groups:
        rack1: [h1, h2, root@h3]
        rack2:
          - qemu+tls://h4.example/system
      hosts:                    # optional: a name -> the host argument to use
        h1: admin@10.0.0.1

* an Ansible INI inventory (``[group]``, ``[group:vars]``, ``[group:children]``,
  ``host key=value``, host ranges ``web[01:20]``), as it is;
* an Ansible YAML inventory (``all: {hosts:, vars:, children:}``), as it is.

Ansible variables honoured: ``ansible_host`` (``ansible_ssh_host``), ``ansible_user``
(``ansible_ssh_user``), ``ansible_port`` (``ansible_ssh_port``), ``ansible_connection=local``,
and ``migcheck_uri`` (a libvirt URI that wins over the others). Host variables win over group
variables, a child group's over its parents', and ``all``'s come last.

A guest is checked against every other host of each migration group its host is in. By default
the migration groups are the groups that list hosts themselves (Ansible hosts directly under
``all`` form the group ``ungrouped``); ``groups=[...]`` picks groups instead, each with the hosts
of all its children. A host in several groups is one host, probed once.
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass, field
from pathlib import Path

from migcheck.connectors.hostspec import HostSpecError, parse_host, redact, runs_programs


class InventoryError(Exception):
    """The inventory cannot be read; the message names the file (and line) and what is wrong."""


@dataclass
class InventoryHost:
    name: str  # as the inventory names it; what every report shows
    spec: str  # the host argument migcheck connects with (NAME, USER@NAME or a libvirt URI)
    groups: list[str] = field(default_factory=list)  # migration groups it belongs to


@dataclass
class Inventory:
    path: str
    format: str  # "migcheck-yaml" | "ansible-ini" | "ansible-yaml"
    hosts: dict[str, InventoryHost]  # in inventory order
    groups: dict[str, list[str]]  # migration group -> host names, in inventory order
    warnings: list[str] = field(default_factory=list)

    def candidates(self, name: str) -> list[str]:
        """The hosts a guest of ``name`` may move to: every other host of its migration groups."""
        out: dict[str, None] = {}
        for g in self.hosts[name].groups:
            for h in self.groups[g]:
                if h != name:
                    out[h] = None
        return list(out)


# ------------------------------------------------------------------ host ranges

_RANGE = re.compile(r"\[([^\]:]+):([^\]:]+)(?::(\d+))?\]")
# Host names an inventory may produce in all, ranges expanded and repeats counted; and what its groups may
# hold in all, children's hosts included. Far above any fleet, far below minutes of work or gigabytes.
MAX_HOSTS = 100_000
MAX_MEMBERSHIPS = 1_000_000


def _range_size(m: re.Match) -> int:
    start, end, stride = m.group(1), m.group(2), int(m.group(3) or 1)
    if start.isdigit() and end.isdigit():
        return max(0, (int(end) - int(start)) // max(stride, 1) + 1)
    return max(0, (ord(end[0]) - ord(start[0])) // max(stride, 1) + 1)


def expand_host_pattern(pattern: str, limit: int = MAX_HOSTS) -> list[str]:
    """Ansible host ranges: ``web[01:03]`` -> web01 web02 web03; ``db-[a:c]``; ``[0:10:5]`` (stride).

    ValueError if it would make more than ``limit`` names: ``h[1:100000]x[1:100000]`` is 10**10.
    """
    m = _RANGE.search(pattern)
    if not m:
        return [pattern]
    total = 1
    for r in _RANGE.finditer(pattern):
        total *= _range_size(r)
        if total > limit:
            raise ValueError(f"host range {pattern!r}: more than {limit} hosts")
    start, end, stride = m.group(1), m.group(2), int(m.group(3) or 1)
    if stride < 1:
        raise ValueError(f"host range {pattern!r}: stride must be at least 1")
    if start.isdigit() and end.isdigit():
        width = len(start) if start.startswith("0") and len(start) > 1 else 0
        if int(end) < int(start):
            raise ValueError(f"host range {pattern!r}: end before start")
        if (int(end) - int(start)) // stride > 100_000:
            raise ValueError(f"host range {pattern!r}: more than 100000 hosts")
        items = [str(i).zfill(width) for i in range(int(start), int(end) + 1, stride)]
    elif len(start) == 1 and len(end) == 1 and start.isalpha() and end.isalpha():
        if ord(end) < ord(start):
            raise ValueError(f"host range {pattern!r}: end before start")
        items = [chr(c) for c in range(ord(start), ord(end) + 1, stride)]
    else:
        raise ValueError(f"host range {pattern!r}: give numbers [01:20] or single letters [a:f]")
    out = []
    for item in items:
        out += expand_host_pattern(pattern[: m.start()] + item + pattern[m.end():])
    return out


# ------------------------------------------------------------ the Ansible model


@dataclass
class _Group:
    name: str
    hosts: dict[str, None] = field(default_factory=dict)  # direct hosts, in order
    children: list[str] = field(default_factory=list)
    vars: dict[str, object] = field(default_factory=dict)


class _AnsibleModel:
    def __init__(self) -> None:
        self.groups: dict[str, _Group] = {}
        self.host_vars: dict[str, dict[str, object]] = {}
        self.host_order: dict[str, None] = {}
        self.names_left = MAX_HOSTS  # host names still allowed (expand)
        self._all_hosts: dict[str, list[str]] = {}

    def group(self, name: str) -> _Group:
        if name not in self.groups:
            self.groups[name] = _Group(name)
        return self.groups[name]

    def expand(self, pattern: str) -> list[str]:
        """expand_host_pattern, within MAX_HOSTS for the whole inventory."""
        names = expand_host_pattern(pattern)
        if len(names) > self.names_left:
            raise ValueError(f"host {pattern!r}: the inventory names more than {MAX_HOSTS} hosts in all")
        self.names_left -= len(names)
        return names

    def add_host(self, group: str, host: str, hvars: dict[str, object]) -> None:
        g = self.group(group)
        g.hosts[host] = None
        self.host_order[host] = None
        self.host_vars.setdefault(host, {}).update(hvars)

    def all_hosts(self, name: str, seen: frozenset[str] = frozenset()) -> list[str]:
        if name in seen:
            raise InventoryError(f"group {name!r} is its own child (a cycle through {', '.join(sorted(seen))})")
        if name == "all":
            return list(self.host_order)
        if name in self._all_hosts:
            return self._all_hosts[name]
        g = self.groups.get(name)
        if g is None:
            return []
        out = dict(g.hosts)
        for child in g.children:
            out.update(dict.fromkeys(self.all_hosts(child, seen | {name})))
        self._all_hosts[name] = list(out)
        return self._all_hosts[name]

    def members(self, path: str) -> dict[str, set[str]]:
        """Each group's hosts, children's included; InventoryError past MAX_MEMBERSHIPS in all."""
        out, total = {}, 0
        for n in self.groups:
            if n != "all":
                out[n] = set(self.all_hosts(n))
                total += len(out[n])
                if total > MAX_MEMBERSHIPS:
                    raise InventoryError(f"{path}: the groups hold more than {MAX_MEMBERSHIPS} hosts in all, "
                                         "children's hosts counted in each parent")
        return out

    def depths(self) -> dict[str, int]:
        """Each group's depth below all (children deeper); a group reached twice keeps the deepest."""
        depth = {"all": 0}
        parents = {n: [p for p, g in self.groups.items() if n in g.children] for n in self.groups}

        def d(n: str, seen: frozenset[str] = frozenset()) -> int:
            if n in depth:
                return depth[n]
            if n in seen:
                raise InventoryError(f"group {n!r} is its own child")
            ps = [p for p in parents.get(n, []) if p != "all"]
            depth[n] = 1 + max((d(p, seen | {n}) for p in ps), default=0)
            return depth[n]

        for n in self.groups:
            d(n)
        return depth

    def effective_vars(self, host: str, depth: dict[str, int], member_of: list[str]) -> dict[str, object]:
        """all's vars, then groups from the shallowest to the deepest (ties by name), then the host's own."""
        out: dict[str, object] = dict(self.groups["all"].vars) if "all" in self.groups else {}
        for n in sorted(member_of, key=lambda n: (depth.get(n, 1), n)):
            out.update(self.groups[n].vars)
        out.update(self.host_vars.get(host, {}))
        return out


def _host_argument(name: str, hvars: dict[str, object]) -> str:
    uri = hvars.get("migcheck_uri")
    if uri:
        return str(uri)
    if str(hvars.get("ansible_connection", "")) == "local":
        return "qemu:///system"
    addr = str(hvars.get("ansible_host") or hvars.get("ansible_ssh_host") or name)
    user = hvars.get("ansible_user") or hvars.get("ansible_ssh_user")
    port = hvars.get("ansible_port") or hvars.get("ansible_ssh_port")
    if port is not None and str(port) not in ("", "22"):
        host = f"[{addr}]" if ":" in addr else addr
        return f"qemu+ssh://{user or 'root'}@{host}:{port}/system"
    return f"{user}@{addr}" if user else addr


def _from_ansible(model: _AnsibleModel, path: str, fmt: str, selected: list[str] | None) -> Inventory:
    depth = model.depths()
    # hosts directly under all are "ungrouped", as Ansible has it
    grouped = {h for n, g in model.groups.items() if n != "all" for h in g.hosts}
    ungrouped = [h for h in model.host_order if h not in grouped]
    if selected:
        missing = [g for g in selected if g != "all" and g not in model.groups]
        if missing:
            raise InventoryError(f"{path}: no group {', '.join(map(repr, missing))} in the inventory "
                                 f"(groups: {', '.join(sorted(model.groups)) or 'none'})")
        groups = {g: model.all_hosts(g) for g in selected}
    else:
        groups = {n: list(g.hosts) for n, g in model.groups.items() if n != "all" and g.hosts}
        if ungrouped:
            groups = {"ungrouped": ungrouped, **groups}
    in_groups = dict.fromkeys(h for hs in groups.values() for h in hs)
    member_of: dict[str, list[str]] = {}
    for n, hs in model.members(path).items():
        for h in hs:
            member_of.setdefault(h, []).append(n)
    hosts = {h: InventoryHost(h, _host_argument(h, model.effective_vars(h, depth, member_of.get(h, []))))
             for h in model.host_order if h in in_groups}
    return _finish(Inventory(path=path, format=fmt, hosts=hosts, groups=groups))


# ---------------------------------------------------------------------- parsers


def _parse_ini(text: str, path: str) -> _AnsibleModel:
    model = _AnsibleModel()
    section, kind = "ungrouped", "hosts"
    for lineno, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line[0] in "#;":
            continue
        where = f"{path}:{lineno}"
        if line.startswith("["):
            m = re.fullmatch(r"\[([^\]:\s]+)(?::(vars|children))?\]\s*(?:[#;].*)?", line)
            if not m:
                raise InventoryError(f"{where}: not a section header: {line!r}")
            section, kind = m.group(1), m.group(2) or "hosts"
            model.group(section)
            continue
        try:
            words = shlex.split(line, comments=True)
        except ValueError as exc:
            raise InventoryError(f"{where}: {exc}: {line!r}") from None
        if not words:
            continue
        if kind == "vars":
            key, eq, value = line.partition("=")
            if not eq or not key.strip():
                raise InventoryError(f"{where}: expected key=value in [{section}:vars]: {line!r}")
            try:
                value_words = shlex.split(value, comments=True)
            except ValueError:
                value_words = [value.strip()]
            model.group(section).vars[key.strip()] = " ".join(value_words)
        elif kind == "children":
            if len(words) != 1:
                raise InventoryError(f"{where}: one group name per line in [{section}:children]: {line!r}")
            if words[0] not in model.group(section).children:
                model.group(section).children.append(words[0])
            model.group(words[0])
        else:
            hvars = {}
            for w in words[1:]:
                key, eq, value = w.partition("=")
                if not eq:
                    raise InventoryError(f"{where}: expected key=value after the host name, got {w!r}")
                hvars[key] = value
            try:
                names = model.expand(words[0])
            except ValueError as exc:
                raise InventoryError(f"{where}: {exc}") from None
            for name in names:
                model.add_host(section, name, hvars)
    return model


def _yaml_group(model: _AnsibleModel, name: str, body: object, path: str, depth: int = 0) -> None:
    if depth > 64:
        raise InventoryError(f"{path}: groups nested more than 64 deep")
    g = model.group(str(name))
    if body is None:
        return
    if not isinstance(body, dict):
        raise InventoryError(f"{path}: group {name!r} must be a mapping (hosts:, vars:, children:), "
                             f"not {type(body).__name__}")
    unknown = set(body) - {"hosts", "vars", "children"}
    if unknown:
        raise InventoryError(f"{path}: group {name!r}: unknown key(s) {', '.join(sorted(map(str, unknown)))} "
                             "(expected hosts, vars, children)")
    hosts = body.get("hosts") or {}
    if isinstance(hosts, list):  # not Ansible's form, but unambiguous
        hosts = {h: None for h in hosts}
    if not isinstance(hosts, dict):
        raise InventoryError(f"{path}: group {name!r}: hosts must be a mapping of host names")
    for pattern, hvars in hosts.items():
        if hvars is not None and not isinstance(hvars, dict):
            raise InventoryError(f"{path}: host {pattern!r}: its variables must be a mapping")
        try:
            names = model.expand(str(pattern))
        except ValueError as exc:
            raise InventoryError(f"{path}: {exc}") from None
        for h in names:
            model.add_host(g.name, h, dict(hvars or {}))
    gvars = body.get("vars") or {}
    if not isinstance(gvars, dict):
        raise InventoryError(f"{path}: group {name!r}: vars must be a mapping")
    g.vars.update(gvars)
    children = body.get("children") or {}
    if isinstance(children, list):
        children = {c: None for c in children}
    if not isinstance(children, dict):
        raise InventoryError(f"{path}: group {name!r}: children must be a mapping of group names")
    for child, cbody in children.items():
        if str(child) not in g.children:
            g.children.append(str(child))
        _yaml_group(model, child, cbody, path, depth + 1)


def _from_migcheck_yaml(data: dict, path: str) -> Inventory:
    unknown = set(data) - {"groups", "hosts"}
    if unknown:
        raise InventoryError(f"{path}: unknown key(s) {', '.join(sorted(map(str, unknown)))} (expected groups, hosts)")
    groups_in = data.get("groups")
    if not isinstance(groups_in, dict) or not groups_in:
        raise InventoryError(f"{path}: 'groups' must map group names to lists of hosts")
    aliases = data.get("hosts") or {}
    if not isinstance(aliases, dict):
        raise InventoryError(f"{path}: 'hosts' must map host names to host arguments (user@host or a URI)")
    hosts: dict[str, InventoryHost] = {}
    groups: dict[str, list[str]] = {}
    for gname, members in groups_in.items():
        if members is None:
            members = []
        if not isinstance(members, list) or not all(isinstance(m, (str, int, float)) for m in members):
            raise InventoryError(f"{path}: group {gname!r} must be a list of hosts (names, user@host or URIs)")
        names = []
        for m in members:
            name = str(m).strip()
            if not name:
                raise InventoryError(f"{path}: group {gname!r} has an empty host")
            names.append(name)
            if name not in hosts:
                hosts[name] = InventoryHost(name, str(aliases.get(name) or name))
        groups[str(gname)] = list(dict.fromkeys(names))
    stray = [a for a in aliases if str(a) not in hosts]
    inv = Inventory(path=path, format="migcheck-yaml", hosts=hosts, groups=groups)
    if stray:
        inv.warnings.append(f"{path}: hosts: {', '.join(map(str, stray))} in no group (not audited)")
    return _finish(inv)


def _finish(inv: Inventory) -> Inventory:
    """Fill each host's groups, validate host arguments, and merge names that reach the same host."""
    for name, h in inv.hosts.items():
        try:
            parse_host(h.spec)
        except HostSpecError as exc:
            raise InventoryError(f"{inv.path}: host {name!r}: {exc}") from None
    by_uri: dict[str, str] = {}
    rename: dict[str, str] = {}
    for name, h in inv.hosts.items():
        uri = parse_host(h.spec).uri
        if uri in by_uri:
            rename[name] = by_uri[uri]
            inv.warnings.append(f"{inv.path}: {name!r} and {by_uri[uri]!r} are the same host ({parse_host(h.spec).spec}): "
                                f"audited once, as {by_uri[uri]!r}")
        else:
            by_uri[uri] = name
    for old in rename:
        del inv.hosts[old]
    for g, members in inv.groups.items():
        inv.groups[g] = list(dict.fromkeys(rename.get(m, m) for m in members))
    for g, members in inv.groups.items():
        for m in members:
            if g not in inv.hosts[m].groups:
                inv.hosts[m].groups.append(g)
    if not inv.hosts:
        raise InventoryError(f"{inv.path}: no hosts in the inventory")
    return inv


def _looks_like_ini(text: str) -> bool:
    for line in text.splitlines():
        s = line.strip()
        if not s or s[0] in "#;":
            continue
        if re.fullmatch(r"\[[^\]\s,]+\]\s*(?:[#;].*)?", s):
            return True
    return False


MAX_YAML_ALIASES = 100  # anchors shared by a few groups' vars are fine; alias chains (billion laughs) are not
MAX_YAML_NODES = 1_000_000  # values in the loaded document, each alias counted as a copy of what it names


_TYPED_TAGS = {"tag:yaml.org,2002:" + t for t in ("bool", "int", "float", "timestamp")}
_LOADERS: dict[type, type] = {}


def _words_loader(base: type) -> type:
    """base, reading unquoted numbers, booleans and dates as the words written (null stays None).

    Every name and value of an inventory is a word to migcheck: YAML 1.1 made the host 0x7f000001
    (or 017700000001) the number 2130706433, which the resolver reads as 127.0.0.1, and 'yes' True.
    """
    if base not in _LOADERS:
        resolvers = {first: [(tag, rx) for tag, rx in entries if tag not in _TYPED_TAGS]
                     for first, entries in base.yaml_implicit_resolvers.items()}
        _LOADERS[base] = type("WordsLoader", (base,), {"yaml_implicit_resolvers": resolvers})
    return _LOADERS[base]


def _load_yaml(text: str, path: str):
    """yaml.safe_load, refusing more than MAX_YAML_ALIASES aliases and documents that expand past MAX_YAML_NODES.

    PyYAML shares what an alias names instead of copying it, so loading is cheap; what is slow or
    huge is walking the result: ten aliases to a list of ten aliases, ten levels deep, is 10**10 values.
    """
    import yaml

    loader = _words_loader(getattr(yaml, "CSafeLoader", yaml.SafeLoader))  # libyaml: 4 times faster, limits nesting
    aliases = 0
    for event in yaml.parse(text, Loader=loader):
        aliases += isinstance(event, yaml.AliasEvent)
        if aliases > MAX_YAML_ALIASES:
            raise InventoryError(f"{path}: more than {MAX_YAML_ALIASES} YAML aliases (*name); write the values out")
    try:
        data = yaml.load(text, Loader=loader)  # noqa: S506 - a safe loader
    except RecursionError:
        raise InventoryError(f"{path}: the YAML is nested deeper than Python can read") from None
    seen, stack = 0, [data]
    while stack:  # an alias may name its own parent: a cycle ends here too
        node = stack.pop()
        seen += 1
        if seen > MAX_YAML_NODES:
            raise InventoryError(f"{path}: the YAML holds more than {MAX_YAML_NODES} values once its aliases "
                                 "(*name) are expanded")
        if isinstance(node, dict):
            stack += node.keys()
            stack += node.values()
        elif isinstance(node, list):
            stack += node
    return data


def parse_inventory(text: str, path: str = "<inventory>", groups: list[str] | None = None,
                    allow_uri_commands: bool = False) -> Inventory:
    """The inventory in text. A host whose URI would have libvirt run a program it names
    (qemu+ext://, ?command=, ?netcat=, ?socket=) is refused unless allow_uri_commands:
    whoever can write the inventory would otherwise run programs as the auditing user."""
    inv = _parse_inventory(text, path, groups)
    if not allow_uri_commands:
        for name, h in inv.hosts.items():
            why = runs_programs(h.spec)
            if why:
                raise InventoryError(f"{path}: host {name!r}: '{redact(h.spec)}': {why}; migcheck audit runs "
                                     "such URIs only with --allow-uri-commands")
    return inv


def _parse_inventory(text: str, path: str, groups: list[str] | None) -> Inventory:
    if _looks_like_ini(text):
        return _from_ansible(_parse_ini(text, path), path, "ansible-ini", groups)
    import yaml  # PyYAML: safe_load builds plain data only

    try:
        data = _load_yaml(text, path)
    except yaml.YAMLError as exc:
        raise InventoryError(f"{path}: not valid YAML (nor an Ansible INI inventory): "
                             f"{' '.join(str(exc).split())}") from None
    if not isinstance(data, dict):
        if data is not None and not isinstance(data, (list, dict)):
            # a bare word per line: the plainest INI inventory (ungrouped hosts)
            return _from_ansible(_parse_ini(text, path), path, "ansible-ini", groups)
        raise InventoryError(f"{path}: expected a mapping ('groups:' or Ansible groups such as 'all:')")
    if "groups" in data and isinstance(data.get("groups"), dict) and \
            all(v is None or isinstance(v, list) for v in data["groups"].values()):
        if groups:
            missing = [g for g in groups if g not in data["groups"]]
            if missing:
                raise InventoryError(f"{path}: no group {', '.join(map(repr, missing))} in the inventory")
            data = {**data, "groups": {g: data["groups"][g] for g in groups}}
        return _from_migcheck_yaml(data, path)
    model = _AnsibleModel()
    for name, body in data.items():
        _yaml_group(model, name, body, path)
    return _from_ansible(model, path, "ansible-yaml", groups)


MAX_INVENTORY_BYTES = 8 * 1024 * 1024  # 100000 hosts with their variables fit; YAML this size loads in ~20 s


def load_inventory(path: str | Path, groups: list[str] | None = None, allow_uri_commands: bool = False) -> Inventory:
    from migcheck.localfile import read_text

    p = Path(path)
    try:
        text = read_text(p, MAX_INVENTORY_BYTES)
    except (OSError, UnicodeDecodeError) as exc:
        raise InventoryError(f"{p}: cannot read the inventory: {exc}") from None
    return parse_inventory(text, str(p), groups, allow_uri_commands)
