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
