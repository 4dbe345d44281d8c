"""The provenance page's words in English and Chinese, chosen from Accept-Language."""

from __future__ import annotations

from typing import Any

TEXTS: dict[str, dict[str, Any]] = {
    "en": {
        "title": "Provenance",
        "product": "Product",
        "lot": "Lot",
        "serial": "Serial",
        "verified": "Verified on chain",
        "pending": "Awaiting anchoring",
        "failed": "Failed audit",
        "place": "Place",
        "block": "Block",
        "batch": "batch",
        "proof": "verify",
        "states": {"anchored": "Verified", "pending": "Pending", "failed": "Failed"},
        "stages": {
            "manufacturing": "Manufactured",
            "quality_inspection": "Inspected",
            "inventory": "Stored",
            "logistics": "Shipped",
            "sales": "Sold",
        },
        "steps": {
            "commissioning": "Manufactured",
            "packing": "Packed",
            "inspecting": "Inspected",
            "receiving": "Received",
            "storing": "Stored",
            "shipping": "Shipped",
            "departing": "Departed",
            "arriving": "Arrived",
            "accepting": "Delivered to the buyer",
            "retail_selling": "Sold",
        },
        "dispositions": {
            "conformant": "passed",
            "non_conformant": "failed inspection",
            "damaged": "damaged",
            "in_transit": "in transit",
            "retail_sold": "sold",
            "recalled": "recalled",
            "active": "new",
            "in_progress": "in progress",
            "sellable_not_accessible": "in storage",
        },
        "measures": {"Temperature": "Temperature", "RelativeHumidity": "Humidity"},
        "footer": "Each event is identified by its GS1 event hash and anchored on a blockchain;"
        " anyone can check a proof without trusting this site.",
    },
    "zh": {
        "title": "产品溯源",
        "product": "产品",
        "lot": "批次",
        "serial": "序列号",
        "verified": "已上链验证",
        "pending": "等待上链",
        "failed": "审计失败",
        "place": "地点",
        "block": "区块",
        "batch": "批",
        "proof": "验证",
        "states": {"anchored": "已验证", "pending": "待上链", "failed": "未通过"},
        "stages": {
            "manufacturing": "生产",
            "quality_inspection": "质检",
            "inventory": "仓储",
            "logistics": "物流",
            "sales": "销售",
        },
        "steps": {
            "commissioning": "生产",
            "packing": "包装",
            "inspecting": "质检",
            "receiving": "收货",
            "storing": "入库",
            "shipping": "发货",
            "departing": "出发",
            "arriving": "到达",
            "accepting": "买方签收",
            "retail_selling": "售出",
        },
        "dispositions": {
            "conformant": "合格",
            "non_conformant": "不合格",
            "damaged": "损坏",
            "in_transit": "运输中",
            "retail_sold": "已售出",
            "recalled": "已召回",
            "active": "新品",
            "in_progress": "处理中",
            "sellable_not_accessible": "在库",
        },
        "measures": {"Temperature": "温度", "RelativeHumidity": "湿度"},
        "footer": "每个事件以 GS1 事件哈希标识并锚定在区块链上。任何人无需信任本站即可验证。",
    },
}


def language(accept_language: str | None) -> str:
    """'zh' when the browser prefers Chinese over English, else 'en'."""
    best, best_q = "en", -1.0
    for part in (accept_language or "").split(","):
        tag, _, params = part.strip().partition(";")
        quality = 1.0
        if params.strip().startswith("q="):
            try:
                quality = float(params.strip()[2:])
            except ValueError:
                quality = 0.0
        primary = tag.strip().lower().split("-")[0]
        if primary in TEXTS and quality > best_q:
            best, best_q = primary, quality
    return best
