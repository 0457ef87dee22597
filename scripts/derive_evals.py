#!/usr/bin/env python3
"""Derive the held-out evaluation samples in data/evals/sources/ from the public datasets.

Maintainer tool: it reads ../shared/datasets (the team's shared folder), which a user's clone does
not have. The product never runs it; its output is committed. Deterministic: same input, same
bytes out.

Every sample keeps its dataset's own file format (the `fenliu-evals` loaders read those formats),
and leaves out every text that is in the routing training set (data/training/*.csv), so the
evals measure the router on messages it was not trained on.

- bitext.csv: Bitext 20k release (CDLA-Sharing-1.0), 10 rows per mapped intent.
- clinc150.json: CLINC150 `val` split (CC BY 3.0), 2 rows per intent, plus 20 `oos_val` rows
  (only those not used for training: in practice none, since the derivation trains on all 200).
- banking77.csv: Banking77 train split (CC BY 4.0), 2 rows per category.
- crosswoz.jsonl: CrossWOZ validation user turns (Apache-2.0), 150 rows.
- tau_retail_tasks.jsonl: τ-bench retail tasks (MIT) whose user is in the demo shop and whose
  write actions fenliu's tools support (cancel, address change, return, exchange) on orders in
  the state the action needs.
"""

import csv
import hashlib
import json
import sys
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SHARED = ROOT.parent / "shared" / "datasets"
OUT = ROOT / "data" / "evals" / "sources"

BITEXT_INTENTS = {
    "cancel_order", "change_order", "track_order", "delivery_period", "change_shipping_address",
    "set_up_shipping_address", "get_refund", "track_refund", "check_invoice", "check_invoices",
    "get_invoice", "payment_issue", "place_order", "newsletter_subscription", "complaint",
    "contact_human_agent", "contact_customer_service", "create_account", "delete_account",
    "edit_account", "recover_password", "registration_problems", "switch_account",
    "check_payment_methods", "delivery_options", "check_refund_policy", "check_cancellation_fee",
    "review",
}
SUPPORTED = {"cancel_pending_order": "pending", "modify_pending_order_address": "pending",
             "return_delivered_order_items": "delivered",
             "exchange_delivered_order_items": "delivered"}


def key(text: str) -> str:
    return hashlib.sha256(("fenliu-evals:" + text).encode("utf-8")).hexdigest()


def sample(rows, n, text=lambda r: r):
    return sorted(rows, key=lambda r: key(text(r)))[:n]


def main() -> int:
    if not SHARED.is_dir():
        print(f"derive_evals: {SHARED} not found (maintainer tool)", file=sys.stderr)
        return 1
    OUT.mkdir(parents=True, exist_ok=True)
    trained = set()
    for path in (ROOT / "data" / "training").glob("*.csv"):
        with open(path, encoding="utf-8") as f:
            trained.update(row["text"].strip() for row in csv.DictReader(f))

    with open(SHARED / "bitext" / "bitext_20k.csv", encoding="utf-8-sig") as f:
        by_intent = defaultdict(list)
        for row in csv.DictReader(f):
            text = row["utterance"].strip()
            if row["intent"] in BITEXT_INTENTS and text not in trained:
                by_intent[row["intent"]].append(row)
    with open(OUT / "bitext.csv", "w", encoding="utf-8", newline="") as f:
        w = csv.writer(f, lineterminator="\n")
        w.writerow(["flags", "utterance", "category", "intent"])
        for intent in sorted(by_intent):
            for row in sample(by_intent[intent], 10, lambda r: r["utterance"]):
                w.writerow([row["flags"], row["utterance"].strip(), row["category"], intent])

    clinc = json.loads((SHARED / "clinc150" / "clinc150_full_train_val.json").read_text())
    val = defaultdict(list)
    for text, intent in clinc["val"]:
        if text.strip() not in trained:
            val[intent].append([text, intent])
    oos = [r for r in clinc["oos_val"] if r[0].strip() not in trained]
    out = {"val": [r for i in sorted(val) for r in sample(val[i], 2, lambda r: r[0])],
           "oos_val": sample(oos, 20, lambda r: r[0])}
    (OUT / "clinc150.json").write_text(json.dumps(out, ensure_ascii=False) + "\n")

    with open(SHARED / "banking77" / "train.csv", encoding="utf-8") as f:
        banking = defaultdict(list)
        for row in csv.DictReader(f):
            if row["text"].strip() not in trained:
                banking[row["category"]].append(row["text"].strip())
    with open(OUT / "banking77.csv", "w", encoding="utf-8", newline="") as f:
        w = csv.writer(f, lineterminator="\n")
        w.writerow(["text", "category"])
        for cat in sorted(banking):
            for text in sample(banking[cat], 2):
                w.writerow([text, cat])

    with open(SHARED / "crosswoz_zh" / "val_user_turns.jsonl", encoding="utf-8") as f:
        turns = [json.loads(line) for line in f if line.strip()]
    turns = [t for t in turns if t["text"].strip() not in trained]
    with open(OUT / "crosswoz.jsonl", "w", encoding="utf-8") as f:
        for t in sample(turns, 150, lambda t: t["text"]):
            f.write(json.dumps({"dialog_id": t["dialog_id"], "turn": t["turn"], "text": t["text"]},
                               ensure_ascii=False) + "\n")

    customers = {c["id"] for c in json.loads((ROOT / "data/demo/customers.json").read_text())}
    orders = {o["id"]: o for o in json.loads((ROOT / "data/demo/orders.json").read_text())}
    kept = []
    for name in ("tasks_dev.jsonl", "tasks_train.jsonl"):
        with open(SHARED / "tau_bench_retail" / name, encoding="utf-8") as f:
            for line in f:
                task = json.loads(line)
                if task["user_id"] not in customers or not task["actions"]:
                    continue
                ok = True
                for a in task["actions"]:
                    need = SUPPORTED.get(a["name"])
                    order = orders.get(a["kwargs"].get("order_id", ""))
                    if need is None or order is None or order["status"] != need \
                            or order["customer_id"] != task["user_id"]:
                        ok = False
                if ok:
                    task["split"] = name.removeprefix("tasks_").removesuffix(".jsonl")
                    kept.append(task)
    with open(OUT / "tau_retail_tasks.jsonl", "w", encoding="utf-8") as f:
        for task in sample(kept, 40, lambda t: f"{t['split']}:{t['task_index']}"):
            f.write(json.dumps(task, ensure_ascii=False) + "\n")
    print("derive_evals: bitext", sum(min(len(v), 10) for v in by_intent.values()),
          "clinc150", len(out["val"]) + len(out["oos_val"]), "tau tasks", min(len(kept), 40),
          "of", len(kept))
    return 0


if __name__ == "__main__":
    sys.exit(main())
