"""A seeded generator of customer-support tickets whose answers are a strict JSON triage.

Our own synthetic data (no third-party text): each example is a system prompt, a customer message,
and an assistant answer `{"category": ..., "priority": ..., "reply": ...}`. The same seed always
gives the same file, so demo runs and benchmarks are reproducible.
"""

from __future__ import annotations

import json
import random
from collections.abc import Iterator
from pathlib import Path
from typing import Any

__all__ = ["SYSTEM_PROMPT", "generate", "write_jsonl"]

# Short on purpose: on a CPU, every token of every example costs training time.
SYSTEM_PROMPT = (
    'Triage the ticket. Answer in JSON: {"category": billing|shipping|technical|account|refund, '
    '"priority": low|medium|high|urgent, "reply": one sentence}'
)

_PRODUCTS = [
    "headphones",
    "smart watch",
    "coffee grinder",
    "desk lamp",
    "backpack",
    "keyboard",
    "water bottle",
    "phone case",
    "router",
    "yoga mat",
]
_NAMES = ["Ana", "Ben", "Chloé", "Dev", "Emeka", "Fatima", "Goran", "Hana", "Ivan", "Jun", "Kofi", "Lena"]

# category -> (templates, replies); {p} is a product, {n} an order number, {d} a number of days.
_CASES: dict[str, tuple[list[str], list[str]]] = {
    "shipping": (
        [
            "My order #{n} with the {p} still hasn't arrived after {d} days.",
            "Tracking for order #{n} has not moved in {d} days. Where is my {p}?",
            "The courier says my {p} was delivered but I never got it (order #{n}).",
        ],
        [
            "Sorry for the wait: we have opened a trace with the courier for order #{n} and will update you within 24 hours.",
            "We are checking with the carrier about order #{n} and will send you an update shortly.",
        ],
    ),
    "billing": (
        [
            "I was charged twice for order #{n} ({p}).",
            "Why is there an extra fee on my invoice for the {p}? Order #{n}.",
            "My card was billed for order #{n} but the order shows as unpaid.",
        ],
        [
            "Thanks for flagging this: we are reviewing the charges on order #{n} and will correct any duplicate.",
            "We have escalated the billing question on order #{n} to our payments team.",
        ],
    ),
    "technical": (
        [
            "My {p} won't turn on anymore after {d} days of use.",
            "The app keeps disconnecting from my {p}. I've tried restarting it.",
            "Firmware update failed and now the {p} is stuck on a blank screen.",
        ],
        [
            "Please hold the power button for 10 seconds to reset the {p}; if that fails we will arrange a replacement.",
            "Sorry about the trouble with your {p}: a technician will contact you with troubleshooting steps.",
        ],
    ),
    "account": (
        [
            "I can't log in to my account, the password reset email never comes.",
            "Please change the email address on my account, I no longer use the old one.",
            "Someone else may have accessed my account, I see an order #{n} I didn't place.",
        ],
        [
            "We have sent a new reset link; please check your spam folder and tell us if it does not arrive.",
            "We have secured your account and will contact you to verify your identity.",
        ],
    ),
    "refund": (
        [
            "I returned the {p} {d} days ago and still have no refund for order #{n}.",
            "I want to return my {p} (order #{n}), it is not what I expected.",
            "The {p} arrived broken, I'd like my money back. Order #{n}.",
        ],
        [
            "We have started the refund for order #{n}; it will reach your account within 5 business days.",
            "Sorry about that: we have emailed you a prepaid return label for order #{n}.",
        ],
    ),
}


def _priority(category: str, text: str, days: int, rng: random.Random) -> str:
    """A deterministic rule the model has to learn: severity words and waiting time set priority."""
    lowered = text.lower()
    if "someone else" in lowered or "charged twice" in lowered:
        return "urgent"
    if "broken" in lowered or "won't turn on" in lowered or days > 14:
        return "high"
    if category in {"shipping", "refund"} and days > 7:
        return "medium"
    return rng.choice(["low", "medium"]) if category == "account" else "low"


def generate(n: int = 300, *, seed: int = 7) -> Iterator[dict[str, Any]]:
    """Yield `n` distinct chat examples (OpenAI `messages` format), the same ones for the same seed."""
    rng = random.Random(seed)
    categories = sorted(_CASES)
    seen: set[str] = set()
    made = 0
    while made < n:
        category = rng.choice(categories)
        templates, replies = _CASES[category]
        days = rng.randint(2, 21)
        fields: dict[str, object] = {"p": rng.choice(_PRODUCTS), "n": rng.randint(10000, 99999), "d": days}
        text = rng.choice(templates).format(**fields)
        if rng.random() < 0.3:
            text = f"Hi, this is {rng.choice(_NAMES)}. {text}"
        if text in seen:  # duplicates would leak between the train and validation splits
            continue
        seen.add(text)
        made += 1
        answer = {
            "category": category,
            "priority": _priority(category, text, days, rng),
            "reply": rng.choice(replies).format(**fields),
        }
        yield {
            "messages": [
                {"role": "system", "content": SYSTEM_PROMPT},
                {"role": "user", "content": text},
                {"role": "assistant", "content": json.dumps(answer, ensure_ascii=False)},
            ]
        }


def write_jsonl(path: str | Path, n: int = 300, *, seed: int = 7) -> Path:
    """Write `generate(n, seed=seed)` to `path` as JSONL and return the path."""
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    with out.open("w", encoding="utf-8") as fh:
        for example in generate(n, seed=seed):
            fh.write(json.dumps(example, ensure_ascii=False) + "\n")
    return out
