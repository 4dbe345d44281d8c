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
        "states": {"anchored": "Verified on chain", "pending": "Pending", "failed": "Failed"},
        # The evidence authority (epcis.authority): a second mark, separate from the chain's.
        "counts": "Attested by the responsible party",
        "unattested_total": "Not attested",
        "claim_by": "Claim by {org}, not attested",
        "claim": "Claim not attested",
        "colon": ": ",
        "comma": ", ",
        "recorded_by": "Recorded by",
        "device": "device",
        "over_api": "over the API",
        "signed": "signed",
        "unsigned": "not signed",
        "also_attested": "Also submitted by",
        # Why a claim does not count, by epcis.authority.Reason (every one has words here).
        "reasons": {
            "not_goods_owner": "only the owner of the product's GS1 company prefix, or a"
            " manufacturer it authorised, may record this",
            "unknown_goods_owner": "no registered company holds the GS1 company prefix of"
            " these goods",
            "no_goods_named": "the record names no goods",
            "not_owner_device_or_inspector": "inspections count only from the goods owner's own"
            " devices or from an inspector the owner authorised",
            "no_site_named": "the record names no site",
            "unknown_site": "nobody is registered as the operator of this site",
            "not_site_operator": "only the operator of this site, with its devices there, may"
            " record this",
            "device_required": "this must come from a device of the responsible party, not be"
            " typed in over the API",
            "no_custodian": "no attested shipment handed the goods to a carrier",
            "not_custodian": "only the carrier holding the goods may record this",
            "held_elsewhere": "the goods are in a supervised warehouse that has not let them go:"
            " only its operator, or the goods' owner, may say they are elsewhere",
            "not_consignee": "the goods are on their way to someone else: only the party they"
            " were shipped to, their carrier or their owner may say where they arrived",
            "no_attestation": "nobody has attested this record",
        },
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
        "states": {"anchored": "已上链验证", "pending": "待上链", "failed": "未通过"},
        "counts": "责任方已确认",
        "unattested_total": "未经确认",
        "claim_by": "{org} 的单方声明，未经责任方确认",  # noqa: RUF001 (Chinese punctuation)
        "claim": "单方声明，未经责任方确认",  # noqa: RUF001 (Chinese punctuation)
        "colon": "：",  # noqa: RUF001 (Chinese punctuation)
        "comma": "，",  # noqa: RUF001 (Chinese punctuation)
        "recorded_by": "记录方",
        "device": "设备",
        "over_api": "通过接口提交",
        "signed": "已签名",
        "unsigned": "未签名",
        "also_attested": "同时提交此记录的还有",
        "reasons": {
            "not_goods_owner": "只有该商品 GS1 厂商识别代码的持有企业或其授权的生产商才能记录此事",
            "unknown_goods_owner": "该商品的 GS1 厂商识别代码未登记在任何企业名下",
            "no_goods_named": "记录中没有指明任何商品",
            "not_owner_device_or_inspector": "质检结果只认货主自有设备或货主授权的检验机构",
            "no_site_named": "记录中没有指明地点",
            "unknown_site": "该地点没有登记运营方",
            "not_site_operator": "只有该地点的运营方（用其在该地点的设备）才能记录此事",  # noqa: RUF001 (Chinese punctuation)
            "device_required": "此事须由责任方的设备记录，不能通过接口手工录入",  # noqa: RUF001 (Chinese punctuation)
            "no_custodian": "没有经确认的发货记录表明货物已交给承运方",
            "not_custodian": "只有正在保管这批货物的承运方才能记录此事",
            "held_elsewhere": "货物存放在受监管仓库且未经其放行："  # noqa: RUF001 (Chinese punctuation)
            "只有该仓库运营方或货主才能声明货物在别处",
            "not_consignee": "货物正运往他方：只有收货方、承运方或货主才能声明货物送达何处",  # noqa: RUF001 (Chinese punctuation)
            "no_attestation": "尚无任何一方确认此记录",
        },
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
