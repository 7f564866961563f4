"""``loopline init``: a confirmed schema proposal becomes params.yaml and the Feast definitions.

Only the keys that describe the data are rewritten (the ``dataset`` section, the feature
service's name, the promotion's segment column, the holdout), as text, so every other
setting and comment of params.yaml stays as it was. Both files are composed and validated
before either is written: a proposal that would not load changes nothing.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd

from loopline.config import ConfigError, Params, load_params
from loopline.data.infer import ColumnGuess, Proposal
from loopline.errors import LooplineError

# The share of labelled rows the holdout should hold.
HOLDOUT_SHARE = 0.2
ARRIVAL_COLUMN = "arrived_at"


@dataclass(frozen=True)
class InitPlan:
    """What init will write: the new params.yaml text, parsed, and the definitions' text."""

    params_text: str
    params: Params
    definitions: str
    notes: list[str]


def dataset_name(source: Path) -> str:
    """A params-safe name from the file's: ``Customers 2026.csv`` -> ``customers_2026``."""
    stem = source.name.split(".")[0]
    name = re.sub(r"[^a-z0-9_]+", "_", stem.lower()).strip("_")
    return name if name and name[0].isalpha() else f"data_{name}".rstrip("_")


def plan(
    proposal: Proposal, sample: pd.DataFrame, params_file: Path, project: Path, name: str
) -> InitPlan:
    """Compose params.yaml and the definitions for ``proposal``; validate before anything is
    written. ``sample`` is the rows the proposal was made from (for the holdout's size)."""
    from loopline import feature_definitions

    notes: list[str] = []
    timestamp = proposal.timestamp or _arrival_column(proposal)
    if proposal.timestamp is None:
        notes.append(
            f"no timestamp column: each ingested file is stamped with its arrival time, in "
            f"column {timestamp!r}; the holdout is {HOLDOUT_SHARE:.0%} of the entities"
        )
        holdout = f"holdout_fraction: {HOLDOUT_SHARE}"
    else:
        days = holdout_days(sample, proposal)
        holdout = f"holdout_days: {days}"
        notes.append(f"holdout: the last {days} days of {proposal.timestamp}")
    text = params_file.read_text()
    text = replace_block(text, "dataset", dataset_block(proposal, name, timestamp, project))
    text = remove_block(text, "generator")
    text = set_key(text, "features", "service", f"{name}_v1")
    text = set_key(text, "promotion", "segment_column", json.dumps(proposal.segment_column))
    text = re.sub(r"(?m)^  holdout_(days|fraction): .*$", lambda _: f"  {holdout}", text, count=1)
    params = _validated(text, params_file)
    return InitPlan(text, params, feature_definitions.render(params), notes)


def _arrival_column(proposal: Proposal) -> str:
    taken = {c.name for c in proposal.columns}
    column, n = ARRIVAL_COLUMN, 1
    while column in taken:
        column, n = f"{ARRIVAL_COLUMN}_{n}", n + 1
    return column


def holdout_days(sample: pd.DataFrame, proposal: Proposal) -> int:
    """Days at the end of the labelled timestamps that hold about HOLDOUT_SHARE of them."""
    assert proposal.timestamp is not None
    labelled = sample[sample[proposal.label].notna()]
    stamps = pd.to_datetime(labelled[proposal.timestamp], utc=True, format="mixed")
    span = stamps.max() - stamps.quantile(1 - HOLDOUT_SHARE)
    return max(1, math.ceil(span / pd.Timedelta(days=1)))


def dataset_block(proposal: Proposal, name: str, timestamp: str, project: Path) -> str:
    """The ``dataset:`` section for this proposal, with comments a person can edit by."""
    source = proposal.source.resolve()
    where = source.relative_to(project) if source.is_relative_to(project) else source
    when = datetime.now(UTC).strftime("%Y-%m-%d")
    lines = [
        "dataset:",
        f"  # Written by `loopline init --from {where}` on {when}; edit freely.",
        f"  name: {name}",
        "  # Read by `loopline ingest` and `loopline run` (csv or parquet).",
        f"  source: {json.dumps(str(where))}",
        f"  entity: {json.dumps(proposal.entity)}",
        f"  timestamp: {json.dumps(timestamp)}",
    ]
    if proposal.timestamp is None:
        lines += [
            "  # The file has no time column: each accepted file gets this one, its arrival time.",
            "  timestamp_source: arrival",
        ]
    lines.append(f"  label: {json.dumps(proposal.label)}")
    mapping = proposal.label_mapping
    if mapping is not None:
        lines += [
            f"  # {mapping.positive!r} is 1 ({proposal.positives:,} of {proposal.labelled:,} "
            "labelled rows in the sample).",
            f"  label_values: {json.dumps(mapping.values())}",
        ]
    lines += [
        "  # The model's inputs. missing: reject (the batch) | impute (strategy: median |",
        "  # most_frequent | constant with fill_value; fitted on training rows only) | allow",
        "  # (the model sees that the value was missing).",
        "  features:",
        *(f"    {_feature(c)}" for c in proposal.columns if c.role == "feature"),
        "  # Personal data, each column: drop (never stored), identifier (a keyed pseudonym,",
        "  # as the entity gets) or keep (stored encrypted per subject). docs/privacy.md",
        f"  pii: {json.dumps(dict.fromkeys(proposal.pii, 'drop'))}",
    ]
    ignored = [c for c in proposal.columns if c.role == "ignore"]
    if ignored:
        lines.append("  # Not used: " + "; ".join(f"{c.name} ({c.reason})" for c in ignored))
    lines += [
        "  # Cells holding one of these, or only whitespace, are missing values.",
        '  na_values: [""]',
        "  # Which labelled rows train: all, or {every_days: N} per entity for daily snapshots.",
        "  label_sampling: all",
        "  # Days after a row's timestamp that its label becomes known (the simulator's delay).",
        "  label_delay_days: 0",
    ]
    return "\n".join(lines) + "\n"


def _feature(column: ColumnGuess) -> str:
    kind = "numeric" if column.kind == "numeric" else "categorical"
    key = json.dumps(column.name)
    if column.missing_policy in (None, "reject"):
        return f"{key}: {kind}"
    setting = f"kind: {kind}, missing: {column.missing_policy}"
    if column.missing_policy == "impute" and column.strategy:
        setting += f", strategy: {column.strategy}"
    return f"{key}: {{{setting}}}  # {column.missing:,} missing in the sample"


def _block_span(text: str, section: str) -> tuple[int, int] | None:
    """Where the top-level ``section:`` block starts and ends (its trailing comments stay)."""
    found = re.search(rf"(?m)^{re.escape(section)}:.*\n", text)
    if found is None:
        return None
    following = re.search(r"(?m)^(?:#.*\n)*[A-Za-z_]", text[found.end() :])
    end = found.end() + following.start() if following else len(text)
    return found.start(), end


def replace_block(text: str, section: str, block: str) -> str:
    span = _block_span(text, section)
    if span is None:
        return text.rstrip("\n") + "\n\n" + block
    start, end = span
    return text[:start] + block + "\n" + text[end:]


def remove_block(text: str, section: str) -> str:
    """Without the section, and the comment lines right above its header (they describe it)."""
    span = _block_span(text, section)
    if span is None:
        return text
    start, end = span
    above = re.search(r"(?m)(?:^#.*\n)+\Z", text[:start])
    return text[: above.start() if above else start] + text[end:]


def set_key(text: str, section: str, key: str, value: str) -> str:
    """Set ``section.key`` (a two-space-indented line of the block), adding it if missing."""
    span = _block_span(text, section)
    if span is None:
        return text.rstrip("\n") + f"\n\n{section}:\n  {key}: {value}\n"
    start, end = span
    block = text[start:end]
    line = re.compile(rf"(?m)^  {re.escape(key)}:.*$")
    if line.search(block):
        # A function, not a template: the value is written as it is (backslashes too).
        block = line.sub(lambda _: f"  {key}: {value}", block, count=1)
    else:
        head, _, rest = block.partition("\n")
        block = f"{head}\n  {key}: {value}\n{rest}"
    return text[:start] + block + text[end:]


def _validated(text: str, params_file: Path) -> Params:
    import tempfile

    with tempfile.TemporaryDirectory() as folder:
        candidate = Path(folder) / params_file.name
        candidate.write_text(text)
        try:
            return load_params(candidate)
        except ConfigError as exc:
            raise InitError(f"the proposed params.yaml would not load:\n{exc}") from exc


class InitError(LooplineError):
    """What init would write is not a working project; nothing was written."""


def write(plan: InitPlan, params_file: Path, definitions: Path) -> None:
    """Both files, each replaced atomically; the definitions last (they follow params)."""
    from loopline import feature_definitions

    feature_definitions.write(params_file, plan.params_text)
    feature_definitions.write(definitions, plan.definitions)
