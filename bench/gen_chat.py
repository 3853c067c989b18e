"""Write a seeded, realistic OpenAI chat fine-tuning JSONL file of about a given size, streaming.

    python bench/gen_chat.py --size-mb 1024 --seed 7 -o bench/data/chat-1024.jsonl

What "realistic" means here: Zipf-distributed English words in sentences and paragraphs (so text
tokenizes at about 4 characters a token, like real prose), log-normal message lengths with a long
tail, 1-6 user/assistant exchanges, a system prompt on about 70% of examples, markdown lists and code
blocks, about 8% non-English text (accented Latin, CJK, Cyrillic, emoji), about 10% examples with
function tools (definitions, an assistant tool call, the tool's JSON answer, a final reply), some
`weight: 0` turns, about 1% exact and near duplicates and a few emails and phone numbers (which the
validator warns about). The same seed and size give the same bytes. Nothing is held but one example.
"""

from __future__ import annotations

import argparse
import itertools
import json
import math
import random
import string
import sys
from pathlib import Path
from typing import Any

# The most frequent English words, roughly in frequency order; drawn with Zipf weights.
_COMMON = """
the of and to a in is it you that he was for on are with as I his they be at one have this from
or had by not word but what some we can out other were all there when up use your how said an each
she which do their time if will way about many then them write would like so these her long make
thing see him two has look more day could go come did number sound no most people my over know
water than call first who may down side been now find any new work part take get place made live
where after back little only round man year came show every good me give our under name very
through just form sentence great think say help low line differ turn cause much mean before move
right boy old too same tell does set three want air well also play small end put home read hand
port large spell add even land here must big high such follow act why ask men change went light
kind off need house picture try us again animal point mother world near build self earth father
head stand own page should country found answer school grow study still learn plant cover food
sun four between state keep eye never last let thought city tree cross farm hard start might story
saw far sea draw left late run while press close night real life few north open seem together next
white children begin got walk example ease paper group always music those both mark often letter
until mile river car feet care second book carry took science eat room friend began idea fish
mountain stop once base hear horse cut sure watch color face wood main enough plain girl usual
young ready above ever red list though feel talk bird soon body dog family direct pose leave song
measure door product black short numeral class wind question happen complete ship area half rock
order fire south problem piece told knew pass since top whole king space heard best hour better
true during hundred five remember step early hold west ground interest reach fast verb sing listen
six table travel less morning ten simple several vowel toward war lay against pattern slow center
love person money serve appear road map rain rule govern pull cold notice voice unit power town
fine certain fly fall lead cry dark machine note wait plan figure star box noun field rest correct
able pound done beauty drive stood contain front teach week final gave green oh quick develop
ocean warm free minute strong special mind behind clear tail produce fact street inch multiply
nothing course stay wheel full force blue object decide surface deep moon island foot system busy
test record boat common gold possible plane stead dry wonder laugh thousand ago ran check game
shape equate miss brought heat snow tire bring yes distant fill east paint language among
""".split()  # noqa: SIM905

# Support, product and programming vocabulary: what fine-tuning data is usually about.
_DOMAIN = """
account order refund invoice payment subscription customer ticket issue error request response
server client database query index table column schema migration deploy release version update
install configure setting option feature bug fix patch build test pipeline function method class
module package library import export file folder directory path upload download password login
email address phone shipping delivery tracking package warehouse store price discount coupon
cart checkout balance transfer bank card statement report dashboard metric latency throughput
timeout retry cache memory disk network router firewall certificate token key secret permission
role user admin team project workspace document template policy contract agreement compliance
privacy security audit backup restore sync integration webhook endpoint API SDK CLI JSON YAML
Python JavaScript TypeScript SQL Docker Kubernetes Linux Windows macOS Android iPhone browser
model training dataset evaluation prompt answer summary translation classification sentiment
schedule meeting calendar reminder appointment doctor insurance claim coverage premium deductible
flight hotel booking reservation itinerary passport visa luggage recipe ingredient oven minutes
""".split()  # noqa: SIM905

_NON_ENGLISH = [
    "Merci beaucoup pour votre réponse rapide, c'était très utile.",
    "Können Sie mir bitte erklären, wie ich mein Passwort zurücksetze?",
    "¿Dónde está mi pedido? Lo compré hace dos semanas y todavía no llegó.",
    "Obrigado! A configuração funcionou perfeitamente depois da atualização.",
    "请帮我查一下订单的物流状态，谢谢。",
    "この設定を変更するにはどうすればいいですか？",
    "고객 지원팀에 문의하려면 어떻게 해야 하나요?",
    "Спасибо, проблема решена. Хорошего дня!",
    "Il file è troppo grande per essere caricato, cosa posso fare?",
    "Zażółć gęślą jaźń — test polskich znaków.",
    "Ça marche ✅ — on se reparle demain 🙂",
    "Το πρόβλημα παραμένει μετά την επανεκκίνηση.",
    "मुझे अपने खाते की जानकारी बदलनी है।",
    "Die Lieferung kam beschädigt an 😞 — bitte um Ersatz.",
    "Naïve café résumé: coöperate with the façade of the jalapeño piñata.",
]

_FUNCTIONS = [
    ("get_order_status", "Look up the status of an order by its id.", {"order_id": "string"}),
    ("search_products", "Search the catalog.", {"query": "string", "limit": "integer"}),
    ("get_weather", "Current weather for a city.", {"city": "string", "unit": "string"}),
    ("create_ticket", "Open a support ticket.", {"subject": "string", "priority": "string"}),
    ("convert_currency", "Convert an amount.", {"amount": "number", "from": "string", "to": "string"}),
    ("book_meeting", "Book a meeting slot.", {"date": "string", "duration_minutes": "integer"}),
]

_FIRST = ["Alex", "Maria", "Sam", "Priya", "Chen", "Fatima", "Lukas", "Aiko", "Omar", "Sofia"]
_LAST = ["Smith", "Garcia", "Nguyen", "Müller", "Kowalski", "Okafor", "Rossi", "Tanaka", "Silva"]


class Writer:
    """Generates examples from one seeded `random.Random`."""

    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)
        # Zipf weights (s = 1) over the ranks; domain words are spread among the common ones from
        # rank 20 on, so a support conversation reads like one.
        self.words = list(_COMMON)
        for word in _DOMAIN:
            self.words.insert(self.rng.randrange(20, len(self.words)), word)
        self.cum = list(itertools.accumulate(1.0 / (r + 1) for r in range(len(self.words))))
        self.systems = [self.paragraph(self.rng.randint(15, 120)) for _ in range(40)]
        self.recent: list[str] = []

    # -- text ---------------------------------------------------------------------------------------

    def sentence(self, n: int) -> str:
        ws = self.rng.choices(self.words, cum_weights=self.cum, k=n)
        r = self.rng.random()
        if r < 0.08:
            ws[self.rng.randrange(n)] = str(self.rng.randint(2, 9999))
        elif r < 0.12:
            ws[self.rng.randrange(n)] = self.rng.choice(_FIRST)
        s = " ".join(ws)
        end = "?" if self.rng.random() < 0.12 else "!" if self.rng.random() < 0.03 else "."
        if n > 8 and self.rng.random() < 0.3:
            cut = self.rng.randrange(3, n - 3)
            s = " ".join(ws[:cut]) + ", " + " ".join(ws[cut:])
        return s[0].upper() + s[1:] + end

    def paragraph(self, n_words: int) -> str:
        out: list[str] = []
        left = max(1, n_words)
        while left > 0:
            k = min(left, max(3, int(self.rng.gauss(14, 6))))
            out.append(self.sentence(k))
            left -= k
        return " ".join(out)

    def text(self, median_words: float, sigma: float = 0.9, cap: int = 6000) -> str:
        n = min(cap, max(2, int(self.rng.lognormvariate(math.log(median_words), sigma))))
        parts: list[str] = []
        while n > 0:
            r = self.rng.random()
            if n > 60 and r < 0.06:
                parts.append(self.code_block())
                n -= 40
            elif n > 30 and r < 0.14:
                items = [self.sentence(self.rng.randint(4, 12)) for _ in range(self.rng.randint(2, 6))]
                parts.append("\n".join(f"{i}. {t}" for i, t in enumerate(items, 1)))
                n -= 8 * len(items)
            else:
                k = min(n, self.rng.randint(25, 90))
                parts.append(self.paragraph(k))
                n -= k
        return "\n\n".join(parts)

    def code_block(self) -> str:
        fn = self.rng.choice(self.words).lower().strip(string.punctuation) or "f"
        arg = self.rng.choice(_DOMAIN).lower()
        lines = [
            "```python",
            f"def {fn}_{arg}({arg}, retries={self.rng.randint(1, 5)}):",
            f'    """{self.sentence(6)}"""',
            "    for attempt in range(retries):",
            f"        result = client.{fn}({arg}=({arg} or {{}}).get('id'), timeout={self.rng.randint(1, 60)})",
            "        if result.ok:",
            "            return result.json()",
            f'    raise RuntimeError("{fn} failed after %d attempts" % retries)',
            "```",
        ]
        return "\n".join(lines)

    def maybe_foreign(self, text: str) -> str:
        if self.rng.random() < 0.08:
            extra = " ".join(self.rng.choices(_NON_ENGLISH, k=self.rng.randint(1, 4)))
            return extra + ("\n\n" + text if self.rng.random() < 0.5 else "")
        return text

    def maybe_pii(self, text: str) -> str:
        r = self.rng.random()
        if r < 0.01:
            who = f"{self.rng.choice(_FIRST).lower()}.{self.rng.choice(_LAST).lower()}"
            return f"{text} You can reach me at {who}@example.com."
        if r < 0.015:
            return f"{text} My number is +1 415 555 {self.rng.randint(1000, 9999)}."
        return text

    # -- examples -----------------------------------------------------------------------------------

    def example(self) -> dict[str, Any]:
        rng = self.rng
        messages: list[dict[str, Any]] = []
        if rng.random() < 0.7:
            messages.append({"role": "system", "content": rng.choice(self.systems)})
        if rng.random() < 0.1:
            return self.tool_example(messages)
        exchanges = min(6, 1 + int(rng.expovariate(0.8)))
        for turn in range(exchanges):
            user = self.maybe_pii(self.maybe_foreign(self.text(35)))
            messages.append({"role": "user", "content": user})
            reply: dict[str, Any] = {"role": "assistant", "content": self.maybe_foreign(self.text(110))}
            if turn < exchanges - 1 and rng.random() < 0.15:
                reply["weight"] = 0
            messages.append(reply)
        return {"messages": messages}

    def tool_example(self, messages: list[dict[str, Any]]) -> dict[str, Any]:
        rng = self.rng
        chosen = rng.sample(_FUNCTIONS, rng.randint(1, 3))
        tools = [
            {
                "type": "function",
                "function": {
                    "name": name,
                    "description": desc,
                    "parameters": {
                        "type": "object",
                        "properties": {k: {"type": t} for k, t in params.items()},
                        "required": list(params)[:1],
                    },
                },
            }
            for name, desc, params in chosen
        ]
        name, _, params = chosen[0]
        call_id = "call_" + "".join(rng.choices(string.ascii_letters + string.digits, k=24))
        args = {
            k: (rng.randint(1, 500) if t in ("integer", "number") else rng.choice(_DOMAIN))
            for k, t in params.items()
        }
        result = {
            "status": rng.choice(["ok", "pending", "shipped"]),
            "detail": self.sentence(rng.randint(5, 20)),
        }
        messages += [
            {"role": "user", "content": self.maybe_foreign(self.text(25))},
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {
                        "id": call_id,
                        "type": "function",
                        "function": {"name": name, "arguments": json.dumps(args)},
                    }
                ],
            },
            {"role": "tool", "tool_call_id": call_id, "content": json.dumps(result)},
            {"role": "assistant", "content": self.text(60)},
        ]
        return {"messages": messages, "tools": tools}

    def line(self) -> str:
        r = self.rng.random()
        if self.recent and r < 0.005:  # an exact duplicate of a recent example
            return self.rng.choice(self.recent)
        if self.recent and r < 0.01:  # a near duplicate: same words, different case and spacing
            return self.rng.choice(self.recent).replace(". ", ".  ").replace("The ", "the ")
        out = json.dumps(self.example(), ensure_ascii=False)
        if len(self.recent) < 64:
            self.recent.append(out)
        else:
            self.recent[self.rng.randrange(64)] = out
        return out


def generate(path: Path, size_bytes: int, seed: int = 7) -> tuple[int, int]:
    """Write examples to `path` until it holds at least `size_bytes`; (examples, bytes) written."""
    w = Writer(seed)
    n = size = 0
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("wb", buffering=1 << 20) as fh:
        while size < size_bytes:
            data = (w.line() + "\n").encode("utf-8")
            fh.write(data)
            size += len(data)
            n += 1
    return n, size


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--size-mb", type=float, default=100.0, help="target size in MiB (default 100)")
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("-o", "--output", type=Path, required=True)
    args = ap.parse_args(argv)
    n, size = generate(args.output, int(args.size_mb * 2**20), args.seed)
    print(f"{args.output}: {n:,} examples, {size:,} bytes", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
