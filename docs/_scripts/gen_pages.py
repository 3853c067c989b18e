"""Pages generated at every `mkdocs build` (mkdocs-gen-files), so they cannot drift from the code.

- `reference/*.md`: the API reference, one page per public module, one section per name in its
  `__all__` (each object documented once, on the page of the module that owns it);
- `cli.md`: every `unitune` command with its arguments and options, from the Typer app;
- `providers/index.md`: which provider offers what, from the registry, each adapter's
  `capabilities` and the catalog's lifecycle data.
"""

from __future__ import annotations

import datetime as dt
import importlib
from typing import Any

import mkdocs_gen_files

# The public modules, most specific first: an object re-exported by several (the errors by `unitune`,
# the client by `unitune.client`) is documented on the first page that exports it.
MODULES: list[tuple[str, str]] = [
    ("unitune.client", "The client"),
    ("unitune.errors", "Errors"),
    ("unitune.types", "Types"),
    ("unitune.config", "Configuration"),
    ("unitune.data", "Data toolkit"),
    ("unitune.catalog", "Catalog and prices"),
    ("unitune.evaluate", "Evaluation"),
    ("unitune.runs", "Runs"),
    ("unitune.tracking", "Tracking"),
    ("unitune.export", "Export"),
    ("unitune.migrate", "Migration"),
    ("unitune.testing", "Testing"),
    ("unitune.providers.base", "Provider contract"),
    ("unitune", "unitune (top level)"),
]


def _page(module: str) -> str:
    """`unitune.client` → `client.md`; `unitune` → `unitune.md`."""
    return (module.removeprefix("unitune.") if module != "unitune" else "unitune") + ".md"


def _reference() -> list[tuple[str, str]]:
    seen: dict[int, str] = {}
    pages: list[tuple[str, str]] = []
    for name, title in MODULES:
        module = importlib.import_module(name)
        lines = [f"# {title}: `{name}`", ""]
        doc = (module.__doc__ or "").strip().split("\n\n")[0]
        if doc:
            lines += [doc, ""]
        elsewhere: list[str] = []
        for export in sorted(getattr(module, "__all__", [])):
            obj = getattr(module, export)
            if callable(obj) or isinstance(obj, type):
                key = id(obj)
                if key in seen:
                    page_ref, anchor = seen[key].split("#")
                    elsewhere.append(f"- `{export}`: documented as [`{anchor}`]({page_ref}#{anchor})")
                    continue
                seen[key] = f"{_page(name)}#{name}.{export}"
            lines += [f"::: {name}.{export}", "    options:", "      heading_level: 2", "      show_root_heading: true",
                      "      show_root_full_path: false", ""]  # fmt: skip
        if elsewhere:
            lines += ["## Also exported here", "", *elsewhere, ""]
        path = f"reference/{_page(name)}"
        with mkdocs_gen_files.open(path, "w") as f:
            f.write("\n".join(lines))
        pages.append((title, path))
    return pages


def _param_row(param: Any) -> str:
    names = ", ".join(f"`{o}`" for o in [*param.opts, *param.secondary_opts]) or f"`{param.name.upper()}`"
    kind = "argument" if param.param_type_name == "argument" else "option"
    help_text = (getattr(param, "help", None) or "").replace("|", "\\|").replace("\n", " ")
    default = param.default
    shown = (
        ""
        if default is None or default is False or kind == "argument" or callable(default)
        else f"`{default}`"
    )
    required = " (required)" if param.required else ""
    return f"| {names} | {kind}{required} | {help_text} | {shown} |"


def _cli() -> None:
    import typer

    from unitune.cli import app

    root = typer.main.get_command(app)
    ctx_class = type(root).context_class
    out = ["# Command line reference", "",
           "Every command of `unitune`, generated from the Typer app at build time. Every command takes "
           "`--provider` and `--json` where it makes sense; errors are one line (exit 2 for a usage error, "
           "1 for a failed operation).", ""]  # fmt: skip

    def walk(cmd: Any, path: list[str], parent: Any) -> None:
        ctx = ctx_class(cmd, info_name=path[-1], parent=parent)
        if len(path) > 1:
            out.extend([f"## `{' '.join(path)}`", ""])
            doc = (cmd.help or "").strip()
            if doc:
                out.extend([doc.split("\n\n")[0].replace("\n", " "), ""])
            pieces = cmd.collect_usage_pieces(ctx)
            out.extend(["```", f"{' '.join(path)} {' '.join(pieces)}".strip(), "```", ""])
            params = [p for p in cmd.params if not getattr(p, "hidden", False) and p.name != "help"]
            if params:
                out.extend(["| name | kind | what | default |", "|---|---|---|---|"])
                out.extend(_param_row(p) for p in params)
                out.append("")
        for name in sorted(getattr(cmd, "commands", {}) or {}):
            sub = cmd.commands[name]
            if not getattr(sub, "hidden", False):
                walk(sub, [*path, name], ctx)

    walk(root, ["unitune"], None)
    with mkdocs_gen_files.open("cli.md", "w") as f:
        f.write("\n".join(out))


_FLAGS = [("create", "SFT"), ("dpo", "DPO"), ("lora", "LoRA"), ("full_finetune", "full"), ("cancel", "cancel"),
          ("pause", "pause"), ("events", "events"), ("metrics", "metrics"), ("checkpoints", "checkpoints"),
          ("chat", "chat"), ("files", "files"), ("wandb_integration", "W&B")]  # fmt: skip


def _providers() -> None:
    from unitune.catalog import load_catalog
    from unitune.providers.registry import BUILTIN_PROVIDERS, load_provider_class

    catalog = load_catalog()
    today = dt.date.today()
    header = ["provider", "extra", "new jobs", *(label for _, label in _FLAGS), "models"]
    out = ["# Providers", "",
           "What each provider offers, generated at build time from the registry, each adapter's "
           "`capabilities` and the catalog (so it cannot drift from the code). ✓ offered, · not offered. "
           "`new jobs` is the catalog's lifecycle on the day the site was built.", "",
           "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]  # fmt: skip
    for name, info in BUILTIN_PROVIDERS.items():
        cls = load_provider_class(name)
        caps = cls.capabilities
        entry = catalog.providers.get(name)
        if entry is not None:
            life = catalog.lifecycle(name, None, today=today)
            status = {
                "live": "✓",
                "closing": f"until {life.date}",
                "retired": "retired" + (f" {life.date}" if life.date else ""),
            }.get(life.state, life.state)
        else:
            status = "✓" if caps.accepts_new_jobs else "retired"
        flags = ["✓" if getattr(caps, attr, False) else "·" for attr, _ in _FLAGS]
        models = len(list(catalog.models(name))) if entry is not None else 0
        page = (
            f"[{name}](../{name}.md)"
            if name in ("openai", "together", "bedrock", "vertex", "mistral", "cohere")
            else name
        )
        extra = f"`unitune[{info.extra}]`" if info.extra else "—"
        out.append("| " + " | ".join([page, extra, status, *flags, str(models)]) + " |")
    out += ["", "Each vendor's page says how to set it up, what maps to what, its statuses, errors, limits and "
            "dates. `fake` impersonates any of them in tests ([Testing](../testing.md)).", ""]  # fmt: skip
    with mkdocs_gen_files.open("providers/index.md", "w") as f:
        f.write("\n".join(out))


_reference()
_cli()
_providers()
