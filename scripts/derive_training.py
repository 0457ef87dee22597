#!/usr/bin/env python3
"""Derive the routing training set in data/training/ from the public datasets.

Maintainer tool: it reads ../shared/datasets (the team's shared folder), which a user's clone does
not have. The product never runs it; its output is committed. Deterministic: same input, same
bytes out.

Mapping (the route taxonomy of the project's datasets README):
- Bitext 8k (CDLA-Sharing-1.0): intents mapped onto order / marketing / complaint / human / faq.
- CLINC150 (CC BY 3.0): `order_status` -> order; a stratified sample of every other intent and
  the `oos` queries -> out_of_scope, except the intents that read like requests to a shop
  (`order`, `shopping_list*`, `card_declined`, and `rewards_balance`/`redeem_rewards`, which a
  shop with a points programme hears as points questions) (`SHOP_LIKE_CLINC`).
- Banking77 (CC BY 4.0): a stratified sample -> out_of_scope (near-domain negatives), except
  the intents a shop's customer asks the shop too (refunds, declined or doubled payments,
  delivery estimates, closing an account, a forgotten password, personal details): in our
  taxonomy those are `order` or `faq` messages, and labelling them out_of_scope taught the router
  to refuse real questions (`SHOP_LIKE_BANKING`).
- CrossWOZ validation user turns (Apache-2.0): a sample -> out_of_scope (Chinese negatives).

Each row: text, route, source, language.
"""

import csv
import hashlib
import json
import sys
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SHARED = ROOT.parent / "shared" / "datasets"
OUT = ROOT / "data" / "training"

BITEXT = {
    "order": ["cancel_order", "change_order", "track_order", "delivery_period",
              "change_shipping_address", "set_up_shipping_address", "get_refund", "track_refund",
              "check_invoice", "check_invoices", "get_invoice", "payment_issue"],
    "marketing": ["place_order", "newsletter_subscription"],
    "complaint": ["complaint"],
    "human": ["contact_human_agent", "contact_customer_service"],
    "faq": ["create_account", "delete_account", "edit_account", "recover_password",
            "registration_problems", "switch_account", "check_payment_methods", "delivery_options",
            "check_refund_policy", "check_cancellation_fee", "review"],
}


# Negatives that are not negatives for a shop (see the docstring).
SHOP_LIKE_BANKING = {
    "Refund_not_showing_up", "request_refund", "terminate_account", "passcode_forgotten",
    "edit_personal_details", "age_limit", "card_delivery_estimate", "declined_card_payment",
    "reverted_card_payment?", "pending_card_payment", "card_payment_fee_charged",
    "transaction_charged_twice", "cancel_transfer", "country_support",
}
SHOP_LIKE_CLINC = {
    "order", "shopping_list", "shopping_list_update", "card_declined",
    # A shop with a points programme hears these as points-balance questions.
    "rewards_balance", "redeem_rewards",
}


def key(item) -> str:
    """Stable pseudo-random order for sampling (items are texts or tuples starting with one)."""
    text = item if isinstance(item, str) else item[0]
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def sample(rows, n):
    return sorted(rows, key=key)[:n]


def main() -> int:
    if not SHARED.is_dir():
        print(f"derive_training: {SHARED} not found (maintainer tool)", file=sys.stderr)
        return 1
    out = []

    intent_route = {i: r for r, intents in BITEXT.items() for i in intents}
    with open(SHARED / "bitext" / "bitext_8k.csv", encoding="utf-8-sig") as f:
        per_intent = defaultdict(list)
        for row in csv.DictReader(f):
            route = intent_route.get(row["intent"])
            if route:
                per_intent[row["intent"]].append((row["utterance"].strip(), route))
    for intent in sorted(per_intent):
        # 120 per intent keeps routes roughly balanced (order has 12 intents, complaint one).
        n = 300 if intent_route[intent] in ("complaint", "human") else 120
        for text, route in sample(per_intent[intent], n):
            out.append((text, route, "bitext", "en"))

    clinc = json.loads((SHARED / "clinc150" / "clinc150_full_train_val.json").read_text())
    by_intent = defaultdict(list)
    for text, intent in clinc["train"] + clinc["val"]:
        by_intent[intent].append(text)
    for intent in sorted(by_intent):
        if intent == "order_status":
            out += [(t, "order", "clinc150", "en") for t in sample(by_intent[intent], 120)]
        elif intent in SHOP_LIKE_CLINC:
            continue
        else:
            out += [(t, "out_of_scope", "clinc150", "en") for t in sample(by_intent[intent], 6)]
    out += [(t, "out_of_scope", "clinc150", "en") for t, _ in clinc["oos_train"] + clinc["oos_val"]]

    with open(SHARED / "banking77" / "train.csv", encoding="utf-8") as f:
        banking = defaultdict(list)
        for row in csv.DictReader(f):
            banking[row["category"]].append(row["text"].strip())
    for cat in sorted(set(banking) - SHOP_LIKE_BANKING):
        out += [(t, "out_of_scope", "banking77", "en") for t in sample(banking[cat], 5)]

    turns = []
    with open(SHARED / "crosswoz_zh" / "val_user_turns.jsonl", encoding="utf-8") as f:
        for line in f:
            text = json.loads(line)["text"].strip()
            if 4 <= len(text) <= 60:
                turns.append(text)
    out += [(t, "out_of_scope", "crosswoz", "zh") for t in sample(sorted(set(turns)), 500)]

    seen = set()
    rows = []
    for text, route, source, lang in out:
        if text and text.lower() not in seen:
            seen.add(text.lower())
            rows.append((text, route, source, lang))
    rows.sort(key=lambda r: (r[1], r[2], r[0]))
    OUT.mkdir(parents=True, exist_ok=True)
    with open(OUT / "routes.csv", "w", encoding="utf-8", newline="") as f:
        w = csv.writer(f, lineterminator="\n")
        w.writerow(["text", "route", "source", "language"])
        w.writerows(rows)
    counts = defaultdict(int)
    for r in rows:
        counts[r[1]] += 1
    print("derive_training:", dict(sorted(counts.items())), "rows:", len(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
