"""What a resolution run reports (``ResolveSummary``)."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class ResolveSummary:
    """What a run did, for the CLI and the flow's logs."""

    mentions: int = 0
    exact: int = 0
    fuzzy: int = 0
    judgement: int = 0
    unresolved: int = 0
    conflicts: int = 0
    persons: int = 0
    candidate_pairs: int = 0
    mode: str = "full"
    new_mentions: int = 0
    #: links (fuzzy / unresolved) of unchanged file versions that tonight's change reaches,
    #: re-decided with the new mentions (not counted in ``new_mentions``; incremental._reopen)
    reopened: int = 0
    #: mention rows written this run (only the new file versions' when the others are kept)
    mentions_built: int = 0
    #: the mentions of unchanged file versions were kept as they were (not built again)
    mentions_kept: bool = False
    #: persons published again (all of them unless only some persons' links changed)
    persons_built: int = 0
    passed_over_dead: int = 0  # candidate links weighed down: dead before the record, a living fit
    weighed_down_by_role: int = 0  # candidate links weighed down: implausible for the role
    seconds: dict[str, float] = field(default_factory=dict)
    skipped: list[str] = field(default_factory=list)

    def render(self) -> str:
        head = (
            "unchanged: the same file versions, configuration and judgements as the last "
            "run; nothing resolved (--full resolves again)"
            if self.mode == "unchanged"
            else f"{self.mode} run: {self.new_mentions:,} new or changed mentions resolved, "
            + (f"{self.reopened:,} earlier ones re-decided, " if self.reopened else "")
            + f"{self.mentions - self.new_mentions - self.reopened:,} kept their link"
        )
        lines = [
            head,
            f"mentions {self.mentions:,}: exact {self.exact:,}, fuzzy {self.fuzzy:,}, "
            f"judgement {self.judgement:,}, unresolved {self.unresolved:,}",
            f"persons {self.persons:,}; ID conflicts {self.conflicts:,}; "
            f"candidate pairs {self.candidate_pairs:,}; candidates weighed down as dead before "
            f"the record {self.passed_over_dead:,}, as implausible for the role "
            f"{self.weighed_down_by_role:,}",
            "time: " + ", ".join(f"{k} {v:.1f}s" for k, v in self.seconds.items()),
        ]
        lines += [f"skipped: {s}" for s in self.skipped]
        return "\n".join(lines)
