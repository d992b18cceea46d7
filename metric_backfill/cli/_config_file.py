"""The configuration file: connections, target, cutoffs and run options kept in one TOML file.

    # metric-backfill.toml (read from the working directory, or --config FILE)
    pg = "postgresql://backfill@db.internal:5432/civitai"
    clickhouse = "https://backfill:${CLICKHOUSE_PASSWORD}@ch.internal:8443/default"
    cutoff = "2025-10-01 00:00:00"
    secrets_file = "metric-backfill.secrets.toml"   # optional, same layout; keep it out of git

    [run]                                             # options of one command
    concurrency = 2
    log_file = "backfill.log"

Keys are the commands' long option names (`chunk-rows` or `chunk_rows`). Top-level keys apply to
every command that has the option; a command's table overrides them; flags on the command line
and then environment variables override the file. Repeatable options take a table
(`source_cutoff = { ImageReaction = "2025-09-01 00:00:00" }`) or a list of strings. `${NAME}`
anywhere in a string is replaced by the environment variable NAME, so that secrets need not be in
the file at all.
"""

from __future__ import annotations

import difflib
import os
import re
import sys
from pathlib import Path
from typing import Any

import click

from metric_backfill._errors import ConfigError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

__all__ = ["DEFAULT_FILE", "load_default_map"]

DEFAULT_FILE = "metric-backfill.toml"
_VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")


def _read(path: Path, what: str) -> dict[str, Any]:
    try:
        with path.open("rb") as f:
            doc: dict[str, Any] = tomllib.load(f)
            return doc
    except FileNotFoundError:
        raise ConfigError(f"{what} {path} does not exist: check the path") from None
    except OSError as exc:
        raise ConfigError(f"cannot read {what} {path}: {exc.strerror}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{what} {path} is not valid TOML: {exc}") from None


def _expand(value: Any, key: str, path: Path) -> Any:
    if isinstance(value, str):

        def var(m: re.Match[str]) -> str:
            name = m[1]
            if name not in os.environ:
                raise ConfigError(f"{path}: {key} uses ${{{name}}}, but the environment variable {name} is not set")
            return os.environ[name]

        return _VAR.sub(var, value)
    if isinstance(value, list):
        return [_expand(v, key, path) for v in value]
    if isinstance(value, dict):
        return {k: _expand(v, f"{key}.{k}", path) for k, v in value.items()}
    return value


def _options(cmd: click.Command) -> dict[str, click.Parameter]:
    """The file keys a command accepts: each long option name, with - or _."""
    out: dict[str, click.Parameter] = {}
    for p in cmd.params:
        if not isinstance(p, click.Option):
            continue
        for opt in p.opts:
            if opt.startswith("--"):
                out[opt[2:].replace("-", "_")] = p
    return out


def _value(param: click.Parameter, value: Any, key: str, path: Path) -> Any:
    if param.multiple:
        if isinstance(value, dict):
            return tuple(f"{k}={v}" for k, v in value.items())
        if isinstance(value, list):
            return tuple(str(v) for v in value)
        raise ConfigError(f"{path}: {key} takes a table (NAME = VALUE) or a list of strings")
    if isinstance(value, (dict, list)):
        raise ConfigError(f"{path}: {key} takes a single value")
    return value


def _unknown(key: str, known: set[str], where: str, path: Path) -> ConfigError:
    near = difflib.get_close_matches(key, sorted(known), n=1)
    hint = f" (did you mean {near[0]}?)" if near else ""
    return ConfigError(f"{path}: unknown key {key!r} {where}{hint}: keys are the long option names of the commands")


def load_default_map(path: Path, group: click.Group, command: str | None) -> dict[str, dict[str, Any]]:
    """Click's default_map (command → parameter name → value) for the file at `path`: every key is
    checked, but only `command`'s values are expanded (an unset variable another command would
    use is not this one's problem)."""
    doc = _read(path, "configuration file")
    secrets = doc.pop("secrets_file", None)
    if secrets is not None:
        spath = Path(str(secrets)).expanduser()
        spath = spath if spath.is_absolute() else path.parent / spath
        extra = _read(spath, "secrets file")
        for k, v in extra.items():
            if isinstance(v, dict) and isinstance(doc.get(k), dict):
                doc[k] = {**doc[k], **v}
            else:
                doc[k] = v
    commands = group.commands
    per_command = {name: _options(cmd) for name, cmd in commands.items()}
    all_keys = {k for opts in per_command.values() for k in opts}
    top = {k.replace("-", "_"): v for k, v in doc.items() if not (k in commands and isinstance(v, dict))}
    for key in top:
        if key not in all_keys:
            raise _unknown(key, all_keys | set(commands), "at the top level", path)
    out: dict[str, dict[str, Any]] = {}
    for name, opts in per_command.items():
        section = doc.get(name)
        if isinstance(section, dict):
            for raw in section:
                if raw.replace("-", "_") not in opts:
                    raise _unknown(raw.replace("-", "_"), set(opts), f"in [{name}]", path)
        if name != command:
            continue
        values: dict[str, Any] = {}
        for key, value in top.items():
            if key in opts:
                values[opts[key].name or key] = _value(opts[key], _expand(value, key, path), key, path)
        if isinstance(section, dict):
            for raw, value in section.items():
                key = raw.replace("-", "_")
                values[opts[key].name or key] = _value(opts[key], _expand(value, f"{name}.{key}", path), key, path)
        if values:
            out[name] = values
    return out
