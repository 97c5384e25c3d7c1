"""The CLI's configuration: preset files + ``key=value`` overrides, validated before anything runs.

Why validate up front: a monitor is started next to a long training run; a typo must fail in a second
with a message naming the key, not after the simulator booted. OmegaConf does the merging; this module
adds the seed workflow's spellings (aliases), type and range checks, and "did you mean" suggestions.
"""

import difflib
import os
from typing import Any, Dict, List, Optional, Sequence, Tuple

import yaml
from omegaconf import OmegaConf

PACKAGE_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# cfg/ of a checkout (editable install), or the copy a regular install ships inside the package
PRESET_DIRS = [
    os.path.join(PACKAGE_ROOT, "cfg"),
    os.path.join(os.path.dirname(os.path.abspath(__file__)), "presets"),
]

# Seed-workflow spellings -> canonical dotted keys.
ALIASES = {
    "checkpoint": "train.checkpoint",
    "testGamesNum": "train.testGamesNum",
    "reloadInterval": "train.reloadInterval",
    "maxEpochs": "train.maxEpochs",
    "trainDir": "train.trainDir",
    "test": "train.test",
    "streamBindAll": "stream.bindAll",
    "streamPort": "stream.port",
    "streamHost": "stream.host",
    "streamFps": "stream.fps",
    "streamQuality": "stream.quality",
    "streamToken": "stream.token",
    "streamRealtime": "stream.realtime",
    "streamReadyFile": "stream.readyFile",
}
CHOICES = {
    "sim": ("auto", "mujoco", "mjwarp", "isaacgym"),
    "train.swapAt": ("auto", "game", "step"),
    "train.loadEnvState": ("always", "first", "never"),
    "train.watch": ("auto", "events", "poll"),
}
# Keys whose default is null: their type when set.
NULLABLE = {
    "numEnvs": int, "train.config": str, "train.maxEpochs": int, "stream.token": str, "stream.readyFile": str,
}
# (minimum, maximum) for numbers.
RANGES = {
    "numEnvs": (1, 1 << 20),
    "graphics_device_id": (-1, 63),
    "train.reloadInterval": (0, 1e9),
    "train.testGamesNum": (0, 1 << 62),
    "train.maxEpochs": (1, 1 << 62),
    "train.maxCheckpointMB": (1, 1 << 20),
    "stream.port": (1, 65535),
    "stream.fps": (0.1, 1000),
    "stream.quality": (1, 100),
    "stream.width": (16, 8192),
    "stream.height": (16, 8192),
    "record.episodes": (1, 1 << 20),
    "record.fps": (0.1, 1000),
}


class ConfigError(ValueError):
    """A one-line, user-facing configuration error (the CLI exits with code 2)."""


def cfg_dirs() -> List[str]:
    return [os.path.join(os.getcwd(), "cfg")] + [d for d in PRESET_DIRS if os.path.isdir(d)]


def find_cfg_file(rel: str) -> Optional[str]:
    for d in cfg_dirs():
        p = os.path.join(d, rel)
        if os.path.isfile(p):
            return p
    return None


def flatten(d: Dict[str, Any], prefix: str = "") -> Dict[str, Any]:
    out: Dict[str, Any] = {}
    for k, v in d.items():
        key = prefix + str(k)
        if isinstance(v, dict):
            out.update(flatten(v, key + "."))
        else:
            out[key] = v
    return out


def read_yaml(path: str, what: str) -> Dict[str, Any]:
    try:
        with open(path) as f:
            data = yaml.safe_load(f) or {}
    except OSError as e:
        raise ConfigError("%s: cannot read %s (%s)" % (what, path, e.strerror)) from e
    except yaml.YAMLError as e:
        raise ConfigError("%s: %s is not valid YAML (%s)" % (what, path, str(e).splitlines()[0])) from e
    if not isinstance(data, dict):
        raise ConfigError("%s: %s must hold a mapping of keys" % (what, path))
    return data


def base_defaults() -> Dict[str, Any]:
    path = next(p for p in (os.path.join(d, "base.yaml") for d in PRESET_DIRS) if os.path.isfile(p))
    return read_yaml(path, "base config")


def suggest(key: str, known: Sequence[str]) -> str:
    close = difflib.get_close_matches(key, list(known), n=1, cutoff=0.5)
    if not close:
        low = {k.lower(): k for k in known}
        close = [low[key.lower()]] if key.lower() in low else []
    return "; did you mean '%s'?" % close[0] if close else ""


def canonical_key(key: str, defaults: Dict[str, Any]) -> str:
    key = ALIASES.get(key, key)
    if key not in defaults and "train." + key in defaults:
        key = "train." + key  # every train.* key may be given without its prefix
    if key not in defaults:
        known = sorted(set(defaults) | set(ALIASES))
        raise ConfigError(
            "unknown key '%s'%s (see the config reference in README.md)" % (key, suggest(key, known))
        )
    return key


def check_value(key: str, value: Any, default: Any) -> Any:
    """Coerce/validate one value against its default's type; return the value to use."""
    want = NULLABLE.get(key, type(default))
    if value is None:
        if key in NULLABLE:
            return None
        raise ConfigError("%s: a value is required (e.g. %s=%s)" % (key, key, default))
    if want is bool:
        if not isinstance(value, bool):
            raise ConfigError("%s=%s: allowed values are true, false" % (key, value))
    elif want in (int, float):
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError("%s=%s: must be a number" % (key, value))
        if want is int and float(value) != int(value):
            raise ConfigError("%s=%s: must be a whole number" % (key, value))
        value = want(value)
        lo, hi = RANGES.get(key, (None, None))
        if lo is not None and not (lo <= value <= hi):
            raise ConfigError("%s=%s: allowed range is %s to %s" % (key, value, lo, hi))
    elif want is str:
        value = str(value)
    if key in CHOICES and value not in CHOICES[key]:
        raise ConfigError(
            "%s=%s: allowed values are %s%s"
            % (key, value, ", ".join(CHOICES[key]), suggest(str(value), CHOICES[key]))
        )
    return value


def _validated(pairs: Sequence[Tuple[str, Any]], defaults: Dict[str, Any], where: str = "") -> Any:
    """One OmegaConf layer from (key, value) pairs, each key canonicalised and its value checked."""
    layer = OmegaConf.create({})
    for key, value in pairs:
        try:
            ckey = canonical_key(key, defaults)
            OmegaConf.update(layer, ckey, check_value(ckey, value, defaults[ckey]), force_add=True)
        except ConfigError as e:
            raise ConfigError("%s: %s" % (where, e) if where else str(e)) from e
    return layer


def string_typed(key: str, defaults: Dict[str, Any]) -> bool:
    """True for keys whose value is text (``streamToken``, ``checkpoint``, ``task``, ...)."""
    try:
        ckey = canonical_key(key, defaults)
    except ConfigError:
        return False
    return NULLABLE.get(ckey, type(defaults[ckey])) is str


def parse_overrides(
    args: Sequence[str], defaults: Optional[Dict[str, Any]] = None
) -> Tuple[Optional[str], List[Tuple[str, Any]]]:
    """Split ``key=value`` words; ``config=NAME`` selects a preset.

    Values are parsed as YAML (``true``, ``0.5``, ``null``), except for text keys when ``defaults`` is
    given: those keep the text as typed (``streamToken=0777`` stays "0777", not 511); ``null`` or ``~``
    unsets a key whose default is null.
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
        if defaults is not None and string_typed(key, defaults):
            nullable = canonical_key(key, defaults) in NULLABLE
            pairs.append((key, None if nullable and raw in ("null", "~") else raw))
            continue
        try:
            value = yaml.safe_load(raw) if raw != "" else ""
        except yaml.YAMLError:
            value = raw
        pairs.append((key, value))
    return preset, pairs


def load(
    cfg_path: Optional[str], args: Sequence[str], pairs: Sequence[Tuple[str, Any]] = ()
) -> Dict[str, Any]:
    """Merge base <- preset file <- ``args`` (``key=value`` words) <- ``pairs`` (typed values); a plain dict."""
    base = base_defaults()
    defaults = flatten(base)
    preset_name, word_pairs = parse_overrides(args, defaults)
    pairs = [*word_pairs, *pairs]
    layers = [OmegaConf.create(base)]
    if preset_name is not None:
        path = find_cfg_file(preset_name if preset_name.endswith(".yaml") else preset_name + ".yaml")
        if path is None:
            names = sorted(
                n[:-5] for d in cfg_dirs() if os.path.isdir(d) for n in os.listdir(d) if n.endswith(".yaml")
            )
            raise ConfigError(
                "config=%s: no such preset; allowed: %s%s"
                % (preset_name, ", ".join(sorted(set(names))), suggest(preset_name, names))
            )
        cfg_path = cfg_path or path
        if cfg_path != path:
            raise ConfigError(
                "config=%s: conflicts with --cfg %s; give one of them" % (preset_name, cfg_path)
            )
    if cfg_path is not None:
        if not os.path.isfile(cfg_path):
            raise ConfigError("--cfg %s: no such file" % cfg_path)
        layers.append(_validated(list(flatten(read_yaml(cfg_path, "--cfg")).items()), defaults, cfg_path))
    layers.append(_validated(pairs, defaults))  # in order: a later spelling of the same key wins
    merged = OmegaConf.to_container(OmegaConf.merge(*layers), resolve=True)
    assert isinstance(merged, dict)
    return merged  # type: ignore[return-value]
