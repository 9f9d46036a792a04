"""Parameters each prompt method adds to a backbone, counted on the meta device (shapes only: any size, no
weights needed); what ``faceprompt params`` prints and the book's cost chapter glues."""
from __future__ import annotations

from faceprompt.backbones import load_backbone
from faceprompt.prompts import added_parameters, build_model, declared_options, method_configs


def check_options(methods: list[str], options: dict, flag: str = "--set") -> None:
    """Refuse, naming ``flag``, an option no method declares or a value a method can't take; before any work."""
    used = set().union(*(declared_options(m, options) for m in methods)) if methods else set()
    unused = sorted(set(options) - used)
    if unused:
        raise ValueError(f"{flag}: option(s) {unused} are not options of any of the methods {methods}")
    for method in methods:
        try:
            method_configs(method, declared_options(method, options))
        except ValueError as err:
            raise ValueError(f"{flag}: {err}") from None


def check_context_fits(backbone, options: dict, flag: str = "--set") -> None:
    """Learned text context must leave room in the tower's text context for the start and end tokens and a
    class word, as training requires."""
    context = int(options.get("context_tokens", 0) or 0) + int(options.get("task_context_tokens", 0) or 0)
    room = backbone.context_length - 3
    if context > room:
        raise ValueError(f"{flag}: {context} context tokens do not fit {backbone.name}'s {backbone.context_length}-"
                         f"token text context (at most {room}: start, end and a class word need the rest)")


def method_parameter_table(backbones: list[str], methods: list[str], options: dict | None = None) -> list[dict]:
    """Added parameters per backbone and method; each option goes to the methods that declare it."""
    options = dict(options or {})
    check_options(methods, options)
    rows = []
    for name in backbones:
        backbone = load_backbone(name, weights="meta")  # shapes only: any size, no weights
        check_context_fits(backbone, options)
        total = sum(p.numel() for p in backbone.parameters())
        for method in methods:
            # The prompts are real tensors (an init phrase is looked up); their sizes are bounded by the checks.
            model = build_model(method, backbone, config=declared_options(method, options) or None)
            added = added_parameters(model)
            rows.append({"backbone": name, "method": method, "added": added, "backbone_params": total,
                         "percent": round(100 * added / total, 4)})
    return rows
