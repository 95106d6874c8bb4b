"""The LoRA preflight's report: the reach of a config per kind of matrix, what it matches outside the decoder, what
PEFT would refuse, the refusal policy (`PreflightReport.ok`, see training.preflight) and its text."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from toolprior.errors import InputError, Problem
from toolprior.training.linear_inventory import LinearModule

DEFAULT_THRESHOLD = 0.5
DEFAULT_KIND_THRESHOLD = 0.10

TOWERS = (
    "vision_tower",
    "audio_tower",
    "visual",
    "vision_model",
    "multi_modal_projector",
    "embed_vision",
    "embed_audio",
)


def outside_group(name: str) -> str:
    parts = name.split(".")
    for i, part in enumerate(parts):
        if part in TOWERS:
            return part
        if part == "layers" and i + 1 < len(parts) and parts[i + 1].isdigit():
            return ".".join(parts[:i])
    return parts[-1]


@dataclass(frozen=True)
class KindRow:
    kind: str
    form: str
    module_type: str
    count: int
    reached: int
    linear_params: int
    reached_params: int
    lora_params: int
    share: float  # of all decoder linear params


@dataclass(frozen=True)
class OutsideMatch:
    """A module or parameter PEFT would wrap outside the decoder blocks (vision tower, projections, embeddings)."""

    name: str
    module_type: str
    lora_params: int


@dataclass(frozen=True)
class Refusal:
    """A module the config matches that PEFT has no LoRA layer for: `get_peft_model` raises ValueError on it."""

    name: str
    module_type: str


@dataclass
class PreflightReport:
    model_class: str
    model_type: str | None
    num_layers: int
    layer_types: dict[str, int]
    target_modules: str | list[str] | None
    target_parameters: list[str] | None
    exclude_modules: str | list[str] | None
    r: int
    effective_target_modules: Any
    effective_target_parameters: list[str]
    rank_pattern: dict[str, int]
    rows: list[KindRow]
    decoder_linear_params: int
    reached_linear_params: int
    lora_params_decoder: int
    outside: list[OutsideMatch]
    refusals: list[Refusal]
    unanalysed: list[str]
    threshold: float = DEFAULT_THRESHOLD
    kind_threshold: float = DEFAULT_KIND_THRESHOLD
    all_linear_kinds: set[str] = field(default_factory=set)  # kinds "all-linear" would reach (for the hint)
    param_targets: dict[str, str] = field(default_factory=dict)  # fused/param kind -> target_parameters suffix
    outside_wrapped: list[LinearModule] = field(default_factory=list)  # wrappers outside the decoder blocks
    outside_wrapped_reached: int = 0
    notes: list[str] = field(default_factory=list)

    @property
    def coverage(self) -> float:
        """Reached decoder linear params / all decoder linear params (fused experts included)."""
        return self.reached_linear_params / self.decoder_linear_params if self.decoder_linear_params else 0.0

    @property
    def lora_params(self) -> int:
        """Analytic LoRA parameter count of everything PEFT would wrap; equals PEFT's trainable count."""
        return self.lora_params_decoder + sum(o.lora_params for o in self.outside)

    @property
    def missed_kinds(self) -> list[str]:
        return [row.kind for row in self.rows if row.reached == 0]

    @property
    def partial_kinds(self) -> list[str]:
        return [row.kind for row in self.rows if 0 < row.reached < row.count]

    @property
    def big_missed_kinds(self) -> list[str]:
        return [row.kind for row in self.rows if row.reached == 0 and row.share > self.kind_threshold]

    @property
    def reasons(self) -> list[str]:
        out = []
        if self.refusals:
            out.append("refusal")
        if self.coverage < self.threshold:
            out.append("coverage")
        if self.big_missed_kinds:
            out.append("missed_kind")
        return out

    @property
    def ok(self) -> bool:
        return not self.reasons

    def targets_text(self) -> str:
        text = f"target_modules {self.target_modules!r}" if self.target_modules is not None else "target_modules None"
        if self.target_parameters:
            text += f" + target_parameters {list(self.target_parameters)!r}"
        return text

    def message(self) -> str:
        """One line saying why the config is refused (empty when ok)."""
        if self.ok:
            return ""
        targets = self.targets_text()
        if self.refusals:
            types = Counter(ref.module_type for ref in self.refusals)
            what = ", ".join(f"{n} {t}" for t, n in types.items())
            in_tower = any(outside_group(ref.name) in TOWERS for ref in self.refusals)
            narrow = (
                r"narrow the names to the decoder with a regex such as '.*language_model.*\.(q_proj|k_proj|v_proj|o_proj)'"
                if in_tower
                else "name the inner nn.Linear instead"
            )
            return (
                f"{targets} match {what} module(s) PEFT cannot wrap (e.g. {self.refusals[0].name}), so get_peft_model "
                f"would raise; {narrow}, or use all-linear"
            )
        missed = self.missed_kinds
        # kinds "all-linear" cannot reach: fused experts / bare router weights, reachable only as target_parameters
        beyond = [k for k in missed if k not in self.all_linear_kinds and k in self.param_targets]
        needs_all_linear = any(k in self.all_linear_kinds for k in missed)
        is_all_linear = isinstance(self.target_modules, str) and self.target_modules.lower() == "all-linear"
        if beyond:
            params = ",".join(self.param_targets[k] for k in beyond)
            hint = (
                ("use all-linear, " if needs_all_linear and not is_all_linear else "")
                + "add --target-parameters "
                + params
                + " (fused expert weights are not nn.Linear, no module name reaches them) or pass --force"
            )
        else:
            hint = "use all-linear or pass --force"
        return (
            f"{targets} reach {percent(self.coverage)} of the decoder's linear parameters "
            f"(missed: {', '.join(missed) if missed else 'none'}); {hint}"
        )

    def format(self, force: bool = False) -> str:
        """The table a person reads before training (`force`: the verdict says the refusal was overridden)."""
        lines = [f"LoRA preflight: {self.model_class}" + (f" ({self.model_type})" if self.model_type else "")]
        layer_desc = f"{self.num_layers} decoder layers"
        if self.layer_types:
            layer_desc += " (" + ", ".join(f"{n} {t}" for t, n in self.layer_types.items()) + ")"
        lines.append(layer_desc)
        lines.append(f"{self.targets_text()}, r={self.r}")
        if self.effective_target_parameters and not self.target_parameters:
            lines.append(f"PEFT adds target_parameters {sorted(self.effective_target_parameters)!r} (MoE conversion)")
        header = ("kind", "form", "modules", "reached", "linear params", "share", "LoRA params")
        table = [header]
        for row in self.rows:
            plain = row.form == "linear" and row.module_type == "Linear"
            form = row.form if plain else f"{row.form}:{row.module_type}"
            table.append(
                (
                    row.kind,
                    form,
                    str(row.count),
                    str(row.reached),
                    f"{row.linear_params:,}",
                    percent(row.share),
                    f"{row.lora_params:,}",
                )
            )
        total_count = sum(row.count for row in self.rows)
        total_reached = sum(row.reached for row in self.rows)
        table.append(
            (
                "decoder total",
                "",
                str(total_count),
                str(total_reached),
                f"{self.decoder_linear_params:,}",
                "100%",
                f"{self.lora_params_decoder:,}",
            )
        )
        widths = [max(len(r[i]) for r in table) for i in range(len(header))]
        for i, cells in enumerate(table):
            if i == len(table) - 1:
                lines.append("  ".join("-" * w for w in widths))
            lines.append(
                "  ".join(
                    c.ljust(w) if j < 2 else c.rjust(w) for j, (c, w) in enumerate(zip(cells, widths, strict=True))
                )
            )
        if self.outside:
            groups = Counter(outside_group(o.name) for o in self.outside)
            lora = sum(o.lora_params for o in self.outside)
            desc = ", ".join(f"{g}: {n}" for g, n in groups.items())
            lines.append(
                f"outside the decoder blocks PEFT also wraps {len(self.outside)} module(s) ({desc}): {lora:,} LoRA params"
            )
        lines.append(
            f"coverage: {percent(self.coverage)} of decoder linear params reached "
            f"({self.reached_linear_params:,} of {self.decoder_linear_params:,})"
        )
        lines.append(
            f"LoRA params: {self.lora_params:,} (analytic r*(in+out) per reached matrix = PEFT trainable count)"
        )
        if self.missed_kinds:
            lines.append(f"missed kinds: {', '.join(self.missed_kinds)}")
        if self.partial_kinds:
            lines.append(f"partly reached kinds: {', '.join(self.partial_kinds)}")
        for ref in self.refusals[:5]:
            lines.append(f"PEFT cannot wrap: {ref.name} ({ref.module_type}) -- get_peft_model raises ValueError")
        if len(self.refusals) > 5:
            lines.append(f"... and {len(self.refusals) - 5} more modules PEFT cannot wrap")
        for name in self.unanalysed:
            lines.append(f"not counted analytically: {name}")
        lines.extend(f"note: {note}" for note in self.notes)
        if self.ok:
            lines.append("verdict: OK")
        elif force and not self.refusals:
            lines.append(f"verdict: below policy, accepted with --force -- {self.message()}")
        else:
            lines.append(f"verdict: REFUSED -- {self.message()}")
        return "\n".join(lines)


class PreflightError(InputError):
    """The LoRA config misses most of the adaptation surface (or PEFT would refuse it); carries the report."""

    def __init__(self, report: PreflightReport, source: str = "<model>"):
        self.report = report
        super().__init__(Problem(file=source, line=None, field=None, message=report.message()))


def check_or_raise(report: PreflightReport, force: bool = False, source: str = "<model>") -> PreflightReport:
    """Raise PreflightError unless the report is ok; `force` waives the coverage rules, never a PEFT refusal."""
    if report.ok:
        return report
    if force and not report.refusals:
        return report
    raise PreflightError(report, source=source)


def report_notes(report: PreflightReport) -> list[str]:
    notes = []
    fused = [row for row in report.rows if row.form == "fused"]
    if fused:
        params = sum(row.linear_params for row in fused)
        names = ", ".join(row.kind for row in fused)
        reached = [row for row in fused if row.reached]
        if not reached:
            notes.append(
                f"experts ({names}): fused 3-D parameters, not nn.Linear -- not reachable by target_modules; "
                f"{params:,} params ({percent(params / report.decoder_linear_params)}) missed. PEFT reaches them only "
                "through target_parameters (LoRA per expert, lora_dropout must be 0)"
            )
        else:
            how = (
                "target_parameters that PEFT's transformers-v5 MoE conversion derived from the target names"
                if not report.target_parameters
                else "target_parameters"
            )
            doubled = {k: v for k, v in report.rank_pattern.items() if v != report.r}
            extra = f"; rank_pattern {doubled} (gate and up fused, so rank doubled)" if doubled else ""
            notes.append(
                f"experts ({names}): fused 3-D parameters, not nn.Linear -- reached via {how}{extra}; "
                f"{sum(row.reached_params for row in fused):,} of {params:,} params; PEFT's ParamWrapper raises "
                "unless lora_dropout is 0"
            )
    full_rank = [row.kind for row in report.rows if row.reached and row.lora_params >= row.reached_params]
    if full_rank:
        notes.append(
            f"{', '.join(full_rank)}: the LoRA adapter is as large as the matrix itself (rank >= its smaller side), "
            "so it is not low-rank there; harmless, but exclude_modules or rank_pattern can trim it"
        )
    for row in report.rows:
        if row.form == "wrapped":
            notes.append(
                f"{row.kind}: {row.module_type} wraps an nn.Linear; PEFT wraps the inner .linear, never the wrapper"
            )
    if report.outside_wrapped:
        types = ", ".join(sorted({e.module_type for e in report.outside_wrapped}))
        groups = ", ".join(sorted({outside_group(e.name) for e in report.outside_wrapped}))
        notes.append(
            f"{len(report.outside_wrapped)} {types} wrappers outside the decoder ({groups}): "
            f"{report.outside_wrapped_reached} reached through their inner .linear; PEFT cannot wrap the wrapper "
            "itself, so naming it (e.g. q_proj) makes get_peft_model raise"
        )
    if any(outside_group(o.name) in TOWERS for o in report.outside):
        notes.append(
            "the config also adapts the vision/audio tower; for a text-only agent add e.g. "
            "--exclude-modules '.*(vision_tower|audio_tower|embed_vision|embed_audio).*'"
        )
    return notes


def percent(x: float) -> str:
    if x == 0:
        return "0%"
    if x < 0.01:
        return f"{100 * x:.2f}%"
    if x < 0.1:
        return f"{100 * x:.1f}%"
    return f"{100 * x:.0f}%"
