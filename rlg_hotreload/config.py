"""The CLI's configuration: defaults (:mod:`rlg_hotreload.schema`) <- a preset <- ``key=value`` overrides.

Why validate up front: a monitor is started next to a long training run; a typo must fail in a second
with a message naming the key, not after the simulator booted. OmegaConf does the merging; every key's
type, aliases, allowed values and default come from the schema; this module adds preset lookup, YAML
errors with their file and line, and "did you mean" suggestions.
"""

import difflib
import os
from typing import Any, Dict, List, Optional, Sequence, Tuple

import yaml
from omegaconf import OmegaConf

from rlg_hotreload import schema

PACKAGE_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# cfg/ of a checkout (editable install), or the copy a regular install ships inside the package
PRESET_DIRS = [
    os.path.join(PACKAGE_ROOT, "cfg"),
    os.path.join(os.path.dirname(os.path.abspath(__file__)), "presets"),
]


class ConfigError(ValueError):
    """A one-line, user-facing configuration error (the CLI exits with code 2)."""


def cfg_dirs() -> List[str]:
    """Where presets are looked up: ``./cfg`` first (your own), then the shipped ones."""
    return [os.path.join(os.getcwd(), "cfg")] + [d for d in PRESET_DIRS if os.path.isdir(d)]


def find_cfg_file(rel: str) -> Optional[str]:
    for d in cfg_dirs():
        p = os.path.join(d, rel)
        if os.path.isfile(p):
            return p
    return None


def presets() -> Dict[str, str]:
    """Preset name -> its first comment line (what it is for), for ``--help`` and errors."""
    out: Dict[str, str] = {}
    for d in reversed(cfg_dirs()):  # ./cfg wins
        if not os.path.isdir(d):
            continue
        for n in sorted(os.listdir(d)):
            if n.endswith(".yaml"):
                try:
                    with open(os.path.join(d, n)) as f:
                        first = f.readline().strip()
                except OSError:
                    first = ""
                out[n[:-5]] = first.lstrip("# ") if first.startswith("#") else ""
    return dict(sorted(out.items()))


def resolve_cfg_path(path: str) -> str:
    """``--cfg PATH``: the file as given, else a shipped preset of that name (``cfg/test.yaml`` run from
    another folder, or after a regular install)."""
    if os.path.isfile(path) or os.path.isabs(path):
        return path
    rel = os.path.normpath(path)
    rel = rel[len("cfg" + os.sep) :] if rel.startswith("cfg" + os.sep) else rel
    return find_cfg_file(rel) or path


def flatten(d: Dict[str, Any], prefix: str = "") -> Dict[str, Any]:
    out: Dict[str, Any] = {}
    for k, v in d.items():
        key = prefix + str(k)
        spec = schema.lookup(key)
        if isinstance(v, dict) and not (spec is not None and spec.type is dict):  # a mapping-valued key stays whole
            out.update(flatten(v, key + "."))
        else:
            out[key] = v
    return out


def _key_lines(node: Any, prefix: str = "", out: Optional[Dict[str, int]] = None) -> Dict[str, int]:
    """Dotted key -> its 1-based line in the YAML (from ``yaml.compose``), to point at a bad key."""
    out = {} if out is None else out
    if isinstance(node, yaml.MappingNode):
        for knode, vnode in node.value:
            key = prefix + str(knode.value)
            out[key] = knode.start_mark.line + 1
            _key_lines(vnode, key + ".", out)
    return out


def read_yaml_lines(path: str, what: str) -> Tuple[Dict[str, Any], Dict[str, int]]:
    """A YAML mapping and the line of each (dotted) key; ConfigError naming ``path:line`` if invalid."""
    try:
        with open(path) as f:
            text = f.read()
    except OSError as e:
        raise ConfigError("%s: cannot read %s (%s)" % (what, path, e.strerror)) from e
    try:
        data = yaml.safe_load(text) or {}
        lines = _key_lines(yaml.compose(text))
    except yaml.MarkedYAMLError as e:
        mark = e.problem_mark
        if e.context_mark is not None and (mark is None or mark.line >= len(text.splitlines())):
            mark = e.context_mark  # "found end of file": point at what was left open instead
        where = "%s:%d" % (path, mark.line + 1) if mark is not None else path
        raise ConfigError("%s: %s: not valid YAML: %s" % (what, where, e.problem or e.context)) from e
    except yaml.YAMLError as e:
        raise ConfigError("%s: %s: not valid YAML: %s" % (what, path, str(e).splitlines()[0])) from e
    if not isinstance(data, dict):
        raise ConfigError("%s: %s must hold a mapping of keys" % (what, path))
    return data, lines


def read_yaml(path: str, what: str) -> Dict[str, Any]:
    """A YAML file that must hold a mapping (``what`` names the key or option it came from)."""
    return read_yaml_lines(path, what)[0]


def suggest(key: str, known: Sequence[str]) -> str:
    close = difflib.get_close_matches(key, list(known), n=1, cutoff=0.5)
    if not close:
        low = {k.lower(): k for k in known}
        close = [low[key.lower()]] if key.lower() in low else []
    return "; did you mean '%s'?" % close[0] if close else ""


def canonical_key(key: str) -> str:
    """The dotted name of ``key`` (an alias, a dotted name, or a ``train.*`` name without its prefix)."""
    found = schema.lookup(key)
    if found is None:
        known = sorted(set(schema.BY_NAME) | set(schema.ALIASES))
        raise ConfigError(
            "unknown key '%s'%s (see the config reference in README.md)" % (key, suggest(key, known))
        )
    return found.name


def check_value(key: str, value: Any) -> Any:
    """``value`` checked and coerced for canonical ``key``; ConfigError ``key=value: what is allowed``."""
    spec = schema.BY_NAME[key]
    try:
        return schema.coerce(spec, value)
    except schema.InvalidValue as e:
        hint = suggest(str(value), spec.choices) if spec.choices else ""
        raise ConfigError("%s=%s: %s%s" % (key, schema.show(value), e, hint)) from e


def _validated(
    pairs: Sequence[Tuple[str, Any]], where: str = "", lines: Optional[Dict[str, int]] = None
) -> Any:
    """One OmegaConf layer from (key, value) pairs, each key canonicalised and its value checked."""
    layer = OmegaConf.create({})
    for key, value in pairs:
        try:
            ckey = canonical_key(key)
            OmegaConf.update(layer, ckey, check_value(ckey, value), force_add=True)
        except ConfigError as e:
            line = (lines or {}).get(key)
            prefix = "%s:%d" % (where, line) if where and line else where
            raise ConfigError("%s: %s" % (prefix, e) if prefix else str(e)) from e
    return layer


def string_typed(key: str) -> bool:
    """True for keys whose value is text (``streamToken``, ``checkpoint``, ``task``, ...)."""
    spec = schema.lookup(key)
    return spec is not None and spec.type is str


def parse_overrides(args: Sequence[str]) -> Tuple[Optional[str], List[Tuple[str, Any]]]:
    """Split ``key=value`` words; ``config=NAME`` selects a preset.

    Values are parsed as YAML (``true``, ``0.5``, ``null``), except for text keys: those keep the text as
    typed (``streamToken=0777`` stays "0777", not 511); ``null`` or ``~`` unsets a key whose default is null.
    """
    preset = None
    pairs: List[Tuple[str, Any]] = []
    for arg in args:
        if "=" not in arg:
            raise ConfigError("'%s': overrides are key=value (e.g. checkpoint=latest)" % arg)
        key, raw = arg.split("=", 1)
        key = key.strip().lstrip("+")
        if key == "config":
            preset = raw
            continue
        spec = schema.lookup(key)
        if spec is not None and spec.type is str:
            pairs.append((key, None if spec.nullable and raw in ("null", "~") else raw))
            continue
        try:
            value = yaml.safe_load(raw) if raw != "" else ""
        except yaml.YAMLError:
            value = raw
        pairs.append((key, value))
    return preset, pairs


def _preset_path(name: str) -> str:
    path = find_cfg_file(name if name.endswith(".yaml") else name + ".yaml")
    if path is None and name.endswith(".yaml") and os.path.isfile(resolve_cfg_path(name)):
        path = resolve_cfg_path(name)  # config=cfg/test.yaml or config=my/preset.yaml
    if path is None:
        names = list(presets())
        raise ConfigError(
            "config=%s: no such preset; allowed: %s%s" % (name, ", ".join(names), suggest(name, names))
        )
    return path


def load(
    cfg_path: Optional[str], args: Sequence[str], pairs: Sequence[Tuple[str, Any]] = ()
) -> Dict[str, Any]:
    """Merge defaults <- preset file <- ``args`` (``key=value`` words) <- ``pairs`` (typed values); a dict."""
    preset_name, word_pairs = parse_overrides(args)
    pairs = [*word_pairs, *pairs]
    layers = [OmegaConf.create(schema.defaults())]
    if cfg_path is not None:
        given, cfg_path = cfg_path, resolve_cfg_path(cfg_path)
        if not os.path.isfile(cfg_path):
            raise ConfigError(
                "--cfg %s: no such file; presets: %s (or config=NAME)" % (given, ", ".join(presets()))
            )
    if preset_name is not None:
        path = _preset_path(preset_name)
        if cfg_path is not None and os.path.realpath(cfg_path) != os.path.realpath(path):
            raise ConfigError(
                "config=%s: conflicts with --cfg %s; give one of them" % (preset_name, cfg_path)
            )
        cfg_path = path
    if cfg_path is not None:
        data, lines = read_yaml_lines(cfg_path, "--cfg")
        layers.append(_validated(list(flatten(data).items()), cfg_path, lines))
    layers.append(_validated(pairs))  # in order: a later spelling of the same key wins
    merged = OmegaConf.to_container(OmegaConf.merge(*layers), resolve=True)
    assert isinstance(merged, dict)
    return merged  # type: ignore[return-value]
