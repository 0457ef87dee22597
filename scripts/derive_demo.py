#!/usr/bin/env python3
"""Derive fenliu's demo shop (data/demo/) from the tau-bench retail data.

MAINTAINER SCRIPT. This is the only file in the project that reads
``../shared/datasets`` (by default ``<repo>/../shared/datasets/tau_bench_retail``,
or the directory given with ``--source``). The product itself never reads it: it
only reads the committed files this script writes into ``data/demo/``.

Writes (deterministically: fixed seed, sorted output, no clock, no randomness
that depends on the machine):

    data/demo/customers.json   customers (subset of tau-bench users)
    data/demo/products.json    all 50 products with category/description/warranty
    data/demo/orders.json      every order of the chosen customers
    data/demo/LICENSE-tau-bench  tau-bench's MIT licence, copied verbatim
    data/demo/ATTRIBUTION.md   what was derived and how
    data/demo/README.md        short description + file list with row counts

The knowledge-base documents in data/demo/docs/ (Markdown + faq.csv) are
written by hand (adapted from tau-bench's wiki.md plus original writing) and are
not touched here; only their counts are reported in README.md.

Usage: python3 scripts/derive_demo.py [--source DIR]   derive, then validate
       python3 scripts/derive_demo.py --check          only validate data/demo/
                                                       (needs no source data)
"""

from __future__ import annotations

import argparse
import csv
import datetime as dt
import hashlib
import json
import random
import shutil
import sys
from pathlib import Path

SEED = "fenliu-demo-2026"
# Everything is dated relative to this instant ("now" of the demo shop).
REFERENCE = dt.datetime(2026, 11, 20, 12, 0, 0, tzinfo=dt.timezone.utc)

TARGET_CUSTOMERS = 120
VIP_FRACTION = 0.10
ZH_PERCENT = 20
SHIPPED_FRACTION = 0.30  # of `processed` orders that have tracking
RETURN_FRACTION = 0.03  # of `delivered` orders
EXCHANGE_FRACTION = 0.02  # of `delivered` orders

# Users that must be in the subset (the demo scenarios and tests refer to them),
# and orders whose owners must be in it.
REQUIRED_USERS = ["noah_brown_6181", "james_li_5688", "amelia_silva_5103"]
REQUIRED_ORDERS = ["#W2611340", "#W7678072"]
FORCED_REGULAR = {"noah_brown_6181"}
FORCED_VIP = {"amelia_silva_5103"}
FORCED_EN = {"james_li_5688", "noah_brown_6181", "amelia_silva_5103"}
STATUSES = [
    "pending",
    "processed",
    "shipped",
    "delivered",
    "cancelled",
    "return_requested",
    "exchange_requested",
]

CARRIERS = [("UPS", 35), ("FedEx", 30), ("USPS", 25), ("SF Express", 10)]

# category -> warranty months (documented in docs/warranty.*.md)
WARRANTY = {
    "electronics": 24,
    "appliances": 12,
    "furniture": 12,
    "home_garden": 12,
    "sports_outdoors": 12,
    "bags_travel": 12,
    "accessories": 12,
    "apparel": 0,
    "footwear": 0,
    "beauty": 0,
    "toys_games": 0,
    "stationery": 0,
    "pet_supplies": 0,
}

# product name -> (category, one-sentence description)
PRODUCTS = {
    "Action Camera": ("electronics", "A compact, rugged camera for recording sports and travel in high resolution, with optional waterproofing."),
    "Air Purifier": ("appliances", "A room air purifier that filters dust, pollen and smoke, available in several room sizes and filter types."),
    "Backpack": ("bags_travel", "An everyday backpack in several sizes and materials, with options for a laptop or camera compartment."),
    "Bicycle": ("sports_outdoors", "A bicycle for commuting or trails, offered in road, mountain and city styles with different frame sizes."),
    "Bluetooth Speaker": ("electronics", "A portable wireless speaker with rechargeable battery, in several colours and with optional water resistance."),
    "Bookshelf": ("furniture", "A free-standing bookshelf in wood, metal or glass, available in different heights and colours."),
    "Coffee Maker": ("appliances", "A drip or single-serve coffee maker for home use, in several capacities and colours."),
    "Cycling Helmet": ("sports_outdoors", "A ventilated cycling helmet in several sizes and colours for road and city riding."),
    "Desk Lamp": ("home_garden", "An adjustable desk lamp with selectable brightness and power source for reading and work."),
    "Digital Camera": ("electronics", "A digital camera with interchangeable settings for resolution, zoom and storage type."),
    "Dumbbell Set": ("sports_outdoors", "A set of dumbbells for home training, offered in several weight ranges, materials and set types."),
    "E-Reader": ("electronics", "A lightweight e-reader with a glare-free screen, available with Wi-Fi or cellular connectivity and various storage sizes."),
    "Electric Kettle": ("appliances", "A fast-boiling electric kettle in plastic, stainless steel or glass, in several capacities."),
    "Electric Toothbrush": ("appliances", "A rechargeable electric toothbrush with selectable speed settings and battery life."),
    "Espresso Machine": ("appliances", "An espresso machine for home baristas, in manual, automatic and capsule types with different pressures."),
    "Fleece Jacket": ("apparel", "A warm fleece jacket with a full or half zip, in several sizes and colours."),
    "Gaming Mouse": ("electronics", "A precise gaming mouse with optical or laser sensor, available wired or wireless."),
    "Garden Hose": ("home_garden", "A flexible garden hose in several lengths and materials for watering and outdoor cleaning."),
    "Grill": ("home_garden", "An outdoor grill for barbecues, offered with charcoal, gas or electric heating and different sizes."),
    "Headphones": ("electronics", "Over-ear or on-ear headphones with wired or wireless connection and optional noise cancelling."),
    "Hiking Boots": ("footwear", "Sturdy hiking boots with good grip, in leather or synthetic materials and optional waterproofing."),
    "Indoor Security Camera": ("electronics", "A home security camera with night vision, different resolutions and field-of-view options."),
    "Jigsaw Puzzle": ("toys_games", "A jigsaw puzzle for relaxing evenings, with piece counts and themes for every difficulty level."),
    "LED Light Bulb": ("home_garden", "An energy-saving LED bulb in different brightness levels and colour temperatures, some with smart connectivity."),
    "Laptop": ("electronics", "A laptop for work and study, configurable by screen size, processor, memory and storage."),
    "Luggage Set": ("bags_travel", "A matching set of travel suitcases in hard or soft shell, in different set sizes and colours."),
    "Makeup Kit": ("beauty", "A makeup kit with complementary shades for different skin tones and finishes."),
    "Mechanical Keyboard": ("electronics", "A mechanical keyboard with a choice of switch types, backlighting and layout size."),
    "Notebook": ("stationery", "A paper notebook with lined, dotted or plain pages and a hard or soft cover."),
    "Office Chair": ("furniture", "An ergonomic office chair with options for material, armrests and backrest height."),
    "Patio Umbrella": ("home_garden", "A patio umbrella for shade outdoors, in several sizes, colours and tilt mechanisms."),
    "Perfume": ("beauty", "A fragrance for men, women or everyone, in several scent families and bottle sizes."),
    "Pet Bed": ("pet_supplies", "A cosy, washable pet bed in several sizes and materials for cats and dogs."),
    "Portable Charger": ("electronics", "A power bank for charging phones and tablets on the go, in several capacities and port types."),
    "Running Shoes": ("footwear", "Lightweight running shoes with cushioned soles, in several sizes, colours and materials."),
    "Skateboard": ("sports_outdoors", "A complete skateboard in different deck materials, lengths and designs."),
    "Smart Thermostat": ("electronics", "A connected thermostat that learns your schedule and works with popular smart-home systems."),
    "Smart Watch": ("electronics", "A smart watch with fitness tracking, GPS or cellular options and interchangeable bands."),
    "Smartphone": ("electronics", "An unlocked smartphone available in several colours, storage sizes and screen sizes."),
    "Sneakers": ("footwear", "Casual everyday sneakers in several sizes, colours and materials."),
    "Sunglasses": ("accessories", "Sunglasses with UV-protective lenses, offered in different frame and lens colours and materials."),
    "T-Shirt": ("apparel", "A comfortable everyday T-shirt in cotton or polyester, with crew or V neck."),
    "Tablet": ("electronics", "A tablet for reading, streaming and light work, with several screen sizes, storage options and colours."),
    "Tea Kettle": ("home_garden", "A stovetop tea kettle in stainless steel, ceramic or glass, suitable for gas or induction hobs."),
    "Vacuum Cleaner": ("appliances", "A vacuum cleaner in upright, canister or robotic form, with bagged or bagless operation."),
    "Wall Clock": ("home_garden", "A decorative wall clock in analog or digital style and several diameters."),
    "Water Bottle": ("accessories", "A reusable water bottle in stainless steel, plastic or glass, in several capacities."),
    "Wireless Earbuds": ("electronics", "True-wireless earbuds with charging case, in several colours and battery-life options."),
    "Wristwatch": ("accessories", "A classic wristwatch with a leather or metal strap and a choice of dial colours."),
    "Yoga Mat": ("sports_outdoors", "A non-slip yoga mat in several thicknesses, materials and colours."),
}


def h(tag: str, key: str) -> int:
    """Deterministic pseudo-random integer for (tag, key)."""
    return int(hashlib.sha256(f"{SEED}:{tag}:{key}".encode()).hexdigest()[:15], 16)


def iso(t: dt.datetime) -> str:
    return t.astimezone(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def address(a: dict) -> dict:
    return {
        "line1": a["address1"],
        "line2": a["address2"],
        "city": a["city"],
        "state": a["state"],
        "country": a["country"],
        "zip": a["zip"],
    }


def pick_subset(users: dict, orders: dict) -> list[str]:
    required = list(REQUIRED_USERS)
    for oid in REQUIRED_ORDERS:
        owner = orders[oid]["user_id"]
        if owner not in required:
            required.append(owner)
    chosen = list(dict.fromkeys(required))
    candidates = sorted(
        (uid for uid, u in users.items() if u["orders"] and uid not in chosen),
        key=lambda uid: (h("subset", uid), uid),
    )
    needed = {"pending", "processed", "delivered", "cancelled"}

    def covered() -> set:
        return {orders[o]["status"] for uid in chosen for o in users[uid]["orders"]}

    for uid in candidates:
        missing = needed - covered()
        if len(chosen) >= TARGET_CUSTOMERS and not missing:
            break
        statuses = {orders[o]["status"] for o in users[uid]["orders"]}
        if len(chosen) < TARGET_CUSTOMERS or statuses & missing:
            chosen.append(uid)
    assert needed <= covered()
    return sorted(chosen)


def task_orders(src: Path) -> set:
    """Order ids that tau-bench's tasks act on (cancel/modify/return/exchange)."""
    ids = set()
    for name in ("tasks_train.jsonl", "tasks_dev.jsonl"):
        path = src / name
        if not path.is_file():
            continue
        for line in path.read_text().splitlines():
            if line.strip():
                for action in json.loads(line)["actions"]:
                    if "order_id" in action.get("kwargs", {}):
                        ids.add(action["kwargs"]["order_id"])
    return ids


def convert_statuses(sub_orders: dict, keep: set) -> dict:
    """Synthetic status changes; orders in `keep` keep their tau-bench status."""
    status = {oid: o["status"] for oid, o in sub_orders.items()}
    processed = sorted(
        oid
        for oid, o in sub_orders.items()
        if o["status"] == "processed" and any(f["tracking_id"] for f in o["fulfillments"])
    )
    n_ship = max(1, round(SHIPPED_FRACTION * len(processed)))
    ranked = sorted((i for i in processed if i not in keep), key=lambda i: (h("shipped", i), i))
    for oid in ranked[:n_ship]:
        status[oid] = "shipped"
    delivered = sorted(oid for oid, o in sub_orders.items() if o["status"] == "delivered")
    ranked = sorted((i for i in delivered if i not in keep), key=lambda i: (h("after-delivery", i), i))
    n_ret = max(1, round(RETURN_FRACTION * len(delivered)))
    n_exc = max(1, round(EXCHANGE_FRACTION * len(delivered)))
    for oid in ranked[:n_ret]:
        status[oid] = "return_requested"
    for oid in ranked[n_ret : n_ret + n_exc]:
        status[oid] = "exchange_requested"
    return status


def dates(oid: str, status: str, returnable: bool) -> tuple[dt.datetime, dt.date | None, dt.datetime | None]:
    """(placed_at, estimated_delivery, delivered_at) for an order, relative to REFERENCE.

    returnable: a delivered order that must still be inside the 30-day return window."""
    rng = random.Random(h("dates", oid))
    today = REFERENCE.date()

    def placed_days_ago(lo: float, hi: float) -> dt.datetime:
        minutes = rng.randint(int(lo * 1440), int(hi * 1440))
        return REFERENCE - dt.timedelta(minutes=minutes)

    def delivery_time(day: dt.date) -> dt.datetime:
        return dt.datetime.combine(day, dt.time(rng.randint(13, 23), rng.choice([0, 15, 30, 45])), dt.timezone.utc)

    if status == "pending":
        placed = placed_days_ago(0.05, 3)
    elif status == "processed":
        placed = placed_days_ago(1, 3)
    elif status == "shipped":
        placed = placed_days_ago(2, 5)
    elif status in ("return_requested", "exchange_requested"):
        placed = placed_days_ago(10, 24)
    elif status == "delivered" and returnable:
        placed = placed_days_ago(8, 22)
    elif status == "delivered":
        placed = placed_days_ago(12, 90)
    elif status == "cancelled":
        placed = placed_days_ago(3, 90)
    else:
        raise ValueError(status)
    if status == "cancelled":
        return placed, None, None
    lo = 3
    if status in ("processed", "shipped"):
        # still on its way: the estimate must not be in the past
        lo = max(3, (today - placed.date()).days + 1)
    est = placed.date() + dt.timedelta(days=rng.randint(lo, max(lo, 7)))
    delivered_at = None
    if status in ("delivered", "return_requested", "exchange_requested"):
        # usually on time, sometimes a day early or late
        day = est + dt.timedelta(days=rng.choice([-1, 0, 0, 0, 0, 1]))
        delivered_at = delivery_time(day)
        assert delivered_at < REFERENCE, oid
    return placed, est, delivered_at


def carrier(tracking: str) -> str:
    total = sum(w for _, w in CARRIERS)
    x = h("carrier", tracking) % total
    for name, w in CARRIERS:
        if x < w:
            return name
        x -= w
    raise AssertionError


def validate(out: Path) -> list[str]:
    """Consistency checks of the committed demo data; returns a list of problems."""
    errs: list[str] = []
    customers = json.loads((out / "customers.json").read_text(encoding="utf-8"))
    products = json.loads((out / "products.json").read_text(encoding="utf-8"))
    orders = json.loads((out / "orders.json").read_text(encoding="utf-8"))
    for name, rows in (("customers", customers), ("products", products), ("orders", orders)):
        ids = [r["id"] for r in rows]
        if ids != sorted(ids) or len(set(ids)) != len(ids):
            errs.append(f"{name}.json: ids not sorted/unique")
    cust = {c["id"]: c for c in customers}
    prod = {p["id"]: p for p in products}
    variants = {v["item_id"]: p["id"] for p in products for v in p["variants"]}
    if len(products) != 50:
        errs.append(f"expected 50 products, got {len(products)}")
    for p in products:
        if p["category"] not in WARRANTY or p["warranty_months"] != WARRANTY[p["category"]] or not p["description"]:
            errs.append(f"product {p['id']}: bad category/warranty/description")
    for c in customers:
        if c["tier"] not in ("regular", "vip") or c["language"] not in ("en", "zh"):
            errs.append(f"customer {c['id']}: bad tier/language")
    for o in orders:
        oid = o["id"]
        c = cust.get(o["customer_id"])
        if c is None:
            errs.append(f"order {oid}: unknown customer {o['customer_id']}")
            continue
        pms = {pm["id"] for pm in c["payment_methods"]}
        for i in o["items"]:
            if i["product_id"] not in prod:
                errs.append(f"order {oid}: unknown product {i['product_id']}")
            elif variants.get(i["item_id"]) != i["product_id"]:
                errs.append(f"order {oid}: item {i['item_id']} is not a variant of {i['product_id']}")
            elif prod[i["product_id"]]["name"] != i["name"]:
                errs.append(f"order {oid}: item name {i['name']!r} != product name")
        item_ids = {i["item_id"] for i in o["items"]}
        for f in o["fulfillments"]:
            if not set(f["item_ids"]) <= item_ids or f["carrier"] not in dict(CARRIERS):
                errs.append(f"order {oid}: bad fulfilment")
        for t in o["payments"]:
            if t["payment_method_id"] not in pms or t["kind"] not in ("payment", "refund"):
                errs.append(f"order {oid}: bad payment {t}")
        st = o["status"]
        if st not in STATUSES:
            errs.append(f"order {oid}: bad status {st}")
            continue
        placed = dt.datetime.fromisoformat(o["placed_at"].replace("Z", "+00:00"))
        age = REFERENCE - placed
        if not dt.timedelta(0) < age <= dt.timedelta(days=90):
            errs.append(f"order {oid}: placed_at outside the 90 days before the reference")
        if st == "pending" and age > dt.timedelta(days=3):
            errs.append(f"order {oid}: pending but placed more than 3 days ago")
        if (o["estimated_delivery"] is None) != (st == "cancelled"):
            errs.append(f"order {oid}: estimated_delivery inconsistent with {st}")
        has_delivery = st in ("delivered", "return_requested", "exchange_requested")
        if (o["delivered_at"] is not None) != has_delivery:
            errs.append(f"order {oid}: delivered_at inconsistent with {st}")
        if o["delivered_at"] and not placed < dt.datetime.fromisoformat(o["delivered_at"].replace("Z", "+00:00")) < REFERENCE:
            errs.append(f"order {oid}: delivered_at out of range")
        if st in ("processed", "shipped") and o["estimated_delivery"] < REFERENCE.date().isoformat():
            errs.append(f"order {oid}: in transit with an estimate in the past")
        if st != "pending" and not o["fulfillments"]:
            errs.append(f"order {oid}: {st} without fulfilment")
    present = {o["status"] for o in orders}
    for s in STATUSES:
        if s not in present:
            errs.append(f"status {s} missing")
    for uid in REQUIRED_USERS:
        if uid not in cust:
            errs.append(f"required customer {uid} missing")
    o = {x["id"]: x for x in orders}
    for oid in REQUIRED_ORDERS:
        if oid not in o:
            errs.append(f"required order {oid} missing")
    if "#W2611340" in o and (o["#W2611340"]["status"], o["#W2611340"]["customer_id"]) != ("processed", "james_li_5688"):
        errs.append("#W2611340 must be processed and owned by james_li_5688")
    for x in orders:
        if x["customer_id"] in REQUIRED_USERS and x["status"] == "delivered":
            delivered = dt.datetime.fromisoformat(x["delivered_at"].replace("Z", "+00:00"))
            if REFERENCE - delivered > dt.timedelta(days=30):
                errs.append(f"{x['id']}: delivered more than 30 days ago (not returnable)")
    if cust.get("noah_brown_6181", {}).get("tier") != "regular":
        errs.append("noah_brown_6181 must be regular")
    if cust.get("amelia_silva_5103", {}).get("tier") != "vip":
        errs.append("amelia_silva_5103 must be vip")
    if cust.get("james_li_5688", {}).get("language") != "en":
        errs.append("james_li_5688 must be en")
    # documents
    docs = out / "docs"
    stems = set()
    for md in sorted(docs.glob("*.md")):
        lines = md.read_text(encoding="utf-8").splitlines()
        if not lines or not lines[0].startswith("# ") or not any(l.startswith("## ") for l in lines):
            errs.append(f"{md.name}: needs a '# Title' and '##' sections")
        stem, lang = md.name[: -len(".xx.md")], md.name[-len("xx.md") : -len(".md")]
        if lang not in ("en", "zh"):
            errs.append(f"{md.name}: name must end in .en.md or .zh.md")
        stems.add(stem)
    for stem in stems:
        for lang in ("en", "zh"):
            if not (docs / f"{stem}.{lang}.md").is_file():
                errs.append(f"docs/{stem}.{lang}.md missing")
    with open(docs / "faq.csv", newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        if reader.fieldnames != ["question", "answer", "language", "section"]:
            errs.append("faq.csv: wrong columns")
        for n, r in enumerate(reader, 2):
            if r["language"] not in ("en", "zh") or r["section"] not in stems or not r["question"] or not r["answer"]:
                errs.append(f"faq.csv line {n}: bad row")
    size = sum(p.stat().st_size for p in out.rglob("*") if p.is_file())
    if size > 1_500_000:
        errs.append(f"data/demo is {size} bytes (> 1.5 MB)")
    return errs


def main() -> int:
    repo = Path(__file__).resolve().parent.parent
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--source", type=Path, default=repo.parent / "shared" / "datasets" / "tau_bench_retail")
    ap.add_argument("--out", type=Path, default=repo / "data" / "demo")
    ap.add_argument("--check", action="store_true", help="only validate the existing files")
    args = ap.parse_args()
    src: Path = args.source
    out: Path = args.out
    if args.check:
        return report(out)

    users = json.loads((src / "data" / "users.json").read_text())
    orders = json.loads((src / "data" / "orders.json").read_text())
    products = json.loads((src / "data" / "products.json").read_text())

    assert set(PRODUCTS) == {p["name"] for p in products.values()}, "product table out of date"

    chosen = pick_subset(users, orders)
    anchor_users = set(REQUIRED_USERS) | {orders[o]["user_id"] for o in REQUIRED_ORDERS}
    anchor_orders = {o for uid in anchor_users for o in users[uid]["orders"]}
    sub_orders = {o: orders[o] for uid in chosen for o in users[uid]["orders"]}
    keep = anchor_orders | task_orders(src)
    status = convert_statuses(sub_orders, keep)
    assert status["#W2611340"] == "processed" and sub_orders["#W2611340"]["user_id"] == "james_li_5688"

    # ---- products
    out_products = []
    for pid in sorted(products):
        p = products[pid]
        cat, desc = PRODUCTS[p["name"]]
        out_products.append(
            {
                "id": pid,
                "name": p["name"],
                "category": cat,
                "description": desc,
                "warranty_months": WARRANTY[cat],
                "variants": [
                    {"item_id": v["item_id"], "options": v["options"], "available": v["available"], "price": v["price"]}
                    for _, v in sorted(p["variants"].items())
                ],
            }
        )

    # ---- orders
    out_orders = []
    for oid in sorted(sub_orders):
        o = sub_orders[oid]
        st = status[oid]
        placed, est, delivered_at = dates(oid, st, oid in keep)
        out_orders.append(
            {
                "id": oid,
                "customer_id": o["user_id"],
                "status": st,
                "placed_at": iso(placed),
                "estimated_delivery": est.isoformat() if est else None,
                "delivered_at": iso(delivered_at) if delivered_at else None,
                "address": address(o["address"]),
                "items": [
                    {
                        "item_id": i["item_id"],
                        "product_id": i["product_id"],
                        "name": i["name"],
                        "price": i["price"],
                        "options": i["options"],
                    }
                    for i in o["items"]
                ],
                "fulfillments": [
                    {
                        "carrier": carrier(f["tracking_id"][0]),
                        "tracking_ids": f["tracking_id"],
                        "item_ids": f["item_ids"],
                    }
                    for f in o["fulfillments"]
                ],
                "payments": [
                    {"kind": t["transaction_type"], "amount": t["amount"], "payment_method_id": t["payment_method_id"]}
                    for t in o["payment_history"]
                ],
            }
        )

    # ---- customers
    spend = {}
    for uid in chosen:
        total = 0.0
        for oid in users[uid]["orders"]:
            for t in orders[oid]["payment_history"]:
                total += t["amount"] if t["transaction_type"] == "payment" else -t["amount"]
        spend[uid] = round(total, 2)
    n_vip = round(VIP_FRACTION * len(chosen))
    ranked = [uid for uid in sorted(chosen, key=lambda u: (-spend[u], u)) if uid not in FORCED_REGULAR]
    vip = (set(ranked[:n_vip]) | FORCED_VIP) - FORCED_REGULAR
    out_customers = []
    for uid in chosen:
        u = users[uid]
        zh = h("language", uid) % 100 < ZH_PERCENT and uid not in FORCED_EN
        out_customers.append(
            {
                "id": uid,
                "name": {"first": u["name"]["first_name"], "last": u["name"]["last_name"]},
                "email": u["email"],
                "tier": "vip" if uid in vip else "regular",
                "language": "zh" if zh else "en",
                "address": address(u["address"]),
                "payment_methods": [
                    {
                        "id": pm_id,
                        "kind": pm["source"],
                        "brand": pm.get("brand"),
                        "last_four": pm.get("last_four"),
                        "balance": pm.get("balance"),
                    }
                    for pm_id, pm in sorted(u["payment_methods"].items())
                ],
            }
        )

    out.mkdir(parents=True, exist_ok=True)

    def dump(name: str, rows: list) -> None:
        text = json.dumps(rows, ensure_ascii=False, indent=1) + "\n"
        (out / name).write_text(text, encoding="utf-8")

    dump("customers.json", out_customers)
    dump("products.json", out_products)
    dump("orders.json", out_orders)
    shutil.copyfile(src / "LICENSE", out / "LICENSE-tau-bench")

    # ---- counts for README/ATTRIBUTION
    by_status = {s: sum(1 for o in out_orders if o["status"] == s) for s in STATUSES}
    n_vip_final = sum(1 for c in out_customers if c["tier"] == "vip")
    n_zh = sum(1 for c in out_customers if c["language"] == "zh")
    n_variants = sum(len(p["variants"]) for p in out_products)
    vip_by_rule = set(ranked[:n_vip])
    forced_vip_note = ", ".join(sorted(FORCED_VIP - vip_by_rule)) or "none"

    docs_dir = out / "docs"
    doc_files = sorted(docs_dir.glob("*.md")) if docs_dir.is_dir() else []
    faq_rows = []
    if (docs_dir / "faq.csv").is_file():
        with open(docs_dir / "faq.csv", newline="", encoding="utf-8") as f:
            faq_rows = list(csv.DictReader(f))
    faq_en = sum(1 for r in faq_rows if r["language"] == "en")
    faq_zh = sum(1 for r in faq_rows if r["language"] == "zh")

    status_line = ", ".join(f"{s} {n}" for s, n in by_status.items())
    readme = f"""# Demo shop data

A small, fictional online shop that fenliu's demo, examples and tests run against: customers with
addresses and payment methods, a 50-product catalogue with variants, orders in every lifecycle
state, and a bilingual (English/Chinese) knowledge base of policies and FAQs. The customer, product
and order records are derived from the τ-bench retail data (MIT, © 2024 Sierra) by
`scripts/derive_demo.py`; see [ATTRIBUTION.md](ATTRIBUTION.md). All people, emails and addresses are
synthetic. Dates are relative to the demo's reference time {iso(REFERENCE)}.

| file | contents |
| --- | --- |
| `customers.json` | {len(out_customers)} customers ({n_vip_final} vip, {n_zh} with language `zh`) |
| `products.json` | {len(out_products)} products, {n_variants} variants |
| `orders.json` | {len(out_orders)} orders: {status_line} |
| `docs/*.md` | {len(doc_files)} policy and help documents ({len([d for d in doc_files if d.name.endswith('.en.md')])} English, {len([d for d in doc_files if d.name.endswith('.zh.md')])} Chinese) |
| `docs/faq.csv` | {len(faq_rows)} question/answer pairs ({faq_en} English, {faq_zh} Chinese); columns `question,answer,language,section` |
| `ATTRIBUTION.md` | origin of the data and the derivation rules |
| `LICENSE-tau-bench` | τ-bench's MIT licence |
"""
    (out / "README.md").write_text(readme, encoding="utf-8")

    attribution = f"""# Attribution

## Source

`customers.json`, `products.json` and `orders.json` are derived from the retail domain of
**τ-bench** (tau-bench) by Sierra, released under the MIT licence, © 2024 Sierra. The licence text
is in [LICENSE-tau-bench](LICENSE-tau-bench). The derivation is done by the maintainer script
`scripts/derive_demo.py` (seed `{SEED}`); re-running it reproduces these files byte for byte.

The knowledge-base documents in `docs/` are adapted from τ-bench's `wiki.md` (the retail agent
policy: cancelling and modifying pending orders, returns and exchanges of delivered orders,
refund timing) plus original writing for this project (shipping, warranty and repair, payment
methods, accounts, feedback, membership tiers, newsletter and promotions, the FAQ, and all Chinese
versions).

## What was kept

- Ids exactly as in τ-bench: user ids, order ids, product ids, item ids, payment-method ids and
  tracking ids; names, emails, addresses, payment-method details, item options and prices,
  payment/refund amounts.
- All 50 products and all their variants (with their `available` flag).
- Every order of every chosen customer.

## Subset rule ({len(out_customers)} of {len(users)} users)

1. Always included: `noah_brown_6181`, `james_li_5688`, `amelia_silva_5103` and the owners of
   orders `#W2611340` and `#W7678072` (these are `james_li_5688` and `noah_brown_6181`).
2. The remaining users who own at least one order are put in a fixed pseudo-random order
   (sha256 of `"{SEED}:subset:<user id>"`, ties by id) and taken in that order until there are
   {TARGET_CUSTOMERS} customers; users are added past that only if some τ-bench status
   (pending, processed, delivered, cancelled) were still missing (with this data none was).

## Added fields and rules

- **tier**: `vip` for the top {VIP_FRACTION:.0%} of the chosen customers ({n_vip}) by net spend
  (sum of payments minus refunds over all their orders; ties by id), `regular` otherwise.
  `noah_brown_6181` is always `regular`; `amelia_silva_5103` is always `vip` (she has only
  cancelled orders, so the spend rule alone would not make her one; forced to vip: {forced_vip_note}).
  Result: {n_vip_final} vip customers.
- **language**: `zh` when sha256 of `"{SEED}:language:<user id>"` mod 100 is below {ZH_PERCENT}
  (about {ZH_PERCENT}%), `en` otherwise; the required users `james_li_5688`, `noah_brown_6181`
  and `amelia_silva_5103` are always `en` (their τ-bench scenarios are in English). Result: {n_zh} `zh`
  customers. Language is a preference only; addresses stay as in τ-bench.
- **products**: `category`, a one-sentence `description` and `warranty_months` were written for
  this project per product name (electronics 24 months; appliances, furniture, home & garden,
  sports & outdoors, bags & travel and accessories 12; apparel, footwear, beauty, toys & games,
  stationery and pet supplies 0).
- **carrier** of each fulfilment: UPS, FedEx, USPS or SF Express, chosen from the tracking id by
  hash (weights 35/30/25/10).

## Synthetic statuses and dates

τ-bench orders have the statuses pending, processed, delivered and cancelled and no dates. Here:

- A fixed pseudo-random {SHIPPED_FRACTION:.0%} of the `processed` orders that have tracking
  became `shipped` (in transit), about {RETURN_FRACTION:.0%} of `delivered` orders became
  `return_requested` and about {EXCHANGE_FRACTION:.0%} became `exchange_requested`, so that every
  status appears. "Kept" orders are never converted: all orders of the required users above (in
  particular `#W2611340` stays `processed` and `#W7678072` stays `delivered`) and every order that
  a τ-bench task (`tasks_*.jsonl`) cancels, modifies, returns or exchanges.
- Reference time ("now" of the demo): **{iso(REFERENCE)}**. `placed_at` lies within the 90 days
  before it: pending orders in the last 3 days, processed 1–3 days, shipped 2–5 days,
  return/exchange requested 10–24 days, delivered 12–90 days (kept delivered orders 8–22 days, so
  that they are inside the 30-day return window of `docs/returns-policy`), cancelled 3–90 days
  before.
- `estimated_delivery` = placement date + 3..7 days for every order that is not cancelled (never
  in the past for processed or shipped orders); `null` for cancelled orders.
- `delivered_at` for delivered, return_requested and exchange_requested orders (the estimate,
  occasionally a day early or late); `null` otherwise.
- All times are UTC.

Status counts: {status_line}.
"""
    (out / "ATTRIBUTION.md").write_text(attribution, encoding="utf-8")

    print(f"customers: {len(out_customers)} (vip {n_vip_final}, zh {n_zh})")
    print(f"products: {len(out_products)} ({n_variants} variants)")
    print(f"orders: {len(out_orders)} ({status_line})")
    return report(out)


def report(out: Path) -> int:
    errs = validate(out)
    for e in errs:
        print(f"invalid: {e}", file=sys.stderr)
    if errs:
        return 1
    size = sum(p.stat().st_size for p in out.rglob("*") if p.is_file())
    print(f"valid: {out} ({size} bytes)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
