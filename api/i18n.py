"""The provenance page's words in English and Chinese, chosen from Accept-Language."""

from __future__ import annotations

from typing import Any

TEXTS: dict[str, dict[str, Any]] = {
    "en": {
        "title": "Provenance",
        "product": "Product",
        "lot": "Lot",
        "serial": "Serial",
        # "On chain" says only that: whether anyone responsible stands behind a record is the
        # separate evidence mark below.
        "verified": "Anchored on chain",
        "pending": "Awaiting anchoring",
        "failed": "Failed the integrity check",
        "place": "Place",
        "block": "block",
        "batch": "batch",
        "proof": "Proof file (JSON, for apps)",
        "states": {
            "anchored": "Anchored on chain",
            "pending": "Not yet anchored",
            "failed": "Altered since it was recorded",
        },
        "producer": "Producer",
        "best_before": "Best before",
        "keep_at": "Keep at",
        "history": "Its journey",
        "time_title": "Local time where it happened",
        "unnamed_site": "Unregistered place",
        "cold_chain": "Temperature on its journey",
        "cold_chain_desc": "Temperature measured by the sensors of the places it was kept,"
        " {bucket} min steps; the shaded band is the allowed range {low}…{high} °C.",
        "cold_chain_ok": "Stayed within the allowed range {low}…{high} °C wherever it was"
        " measured.",
        "cold_chain_none": "No temperature readings are recorded for the places it was kept.",
        "excursion": "{duration} at {value} °C in {place}, allowed {low}…{high} °C",
        "excursions": "Outside the allowed range",
        "minutes": "{m} min",
        "hours": "{h} h",
        "hours_minutes": "{h} h {m} min",
        "stay": "{place}: {since} to {until}",
        "still_there": "now",
        "check": "Check it yourself",
        "check_button": "Check this step",
        "check_intro": "Your browser recomputes this step's proof from its event hash to the"
        " Merkle root and reads the root anchored on the blockchain, through the node you"
        " choose. Nothing here relies on this site's database.",
        "check_rpc": "Blockchain node (JSON-RPC address)",
        "check_contract": "Anchor contract",
        "check_noscript": "Checking in the browser needs JavaScript. Without it, download a"
        " step's proof file and run `tracefin verify` on it.",
        "check_messages": {
            "leaf": "Event hash to leaf hash",
            "left": "Joined with the left neighbour",
            "right": "Joined with the right neighbour",
            "path_ok": "The path leads to the root in the proof",
            "path_bad": "The path does NOT lead to the root in the proof",
            "chain": "Chain id",
            "chain_bad": "The node is on another chain than the proof names",
            "contract": "Anchor contract",
            "contract_bad": "This contract is not one this site anchors to",
            "call": "Root on chain for batch",
            "root_ok": "The chain holds the same root",
            "root_bad": "The chain holds a different root",
            "range_bad": "The batch on chain covers other positions",
            "block": "Anchored in block",
            "valid": "Valid: this step is in the batch anchored on chain",
            "invalid": "Invalid: this proof does not match the chain",
            "error": "Could not reach the node",
            "check_rpc_missing": "give the address of a blockchain node (http or https)",
        },
        # The evidence authority (epcis.authority): a second mark, separate from the chain's.
        "counts": "Attested by the responsible party",
        "unattested_total": "Not attested",
        "claim_by": "Claim by {org}, not attested",
        "claim": "Claim not attested",
        "colon": ": ",
        "comma": ", ",
        "recorded_by": "Recorded by",
        "recorded_by_org": "Recorded by {org}",
        "lp": " (",
        "rp": ")",
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
            "error_declared": "the party that recorded it declared it erroneous",
        },
        # An event its party declared erroneous (EPCIS errorDeclaration): void evidence.
        "declared_erroneous": "Declared erroneous by {org} on {time}",
        "declared_total": "Declared erroneous",
        "error_reasons": {
            "did_not_occur": "it did not happen",
            "incorrect_data": "its data is wrong",
        },
        "stages": {
            "manufacturing": "Manufactured",
            "quality_inspection": "Inspected",
            "inventory": "Stored",
            "logistics": "Shipped",
            "sales": "Sold",
        },
        "steps": {
            "commissioning": "Made",
            "packing": "Packed for shipping",
            "inspecting": "Quality inspection",
            "receiving": "Received",
            "storing": "Put into storage",
            "shipping": "Shipped",
            "departing": "Left for delivery",
            "arriving": "Arrived",
            "accepting": "Received by the buyer",
            "retail_selling": "Sold in the shop",
        },
        "dispositions": {
            "conformant": "passed",
            "non_conformant": "did not pass",
            "damaged": "damaged",
            "in_transit": "in transit",
            "retail_sold": "sold",
            "recalled": "recalled",
            "active": "new",
            "in_progress": "in progress",
            "sellable_not_accessible": "in storage",
        },
        "measures": {"Temperature": "Temperature", "RelativeHumidity": "Humidity"},
        "footer": "Each step is identified by its GS1 event hash and anchored on a blockchain;"
        " anyone can check a proof without trusting this site.",
    },
    "zh": {
        "title": "产品溯源",
        "product": "产品",
        "lot": "批次",
        "serial": "序列号",
        "verified": "已上链存证",
        "pending": "等待上链",
        "failed": "未通过完整性校验",
        "place": "地点",
        "block": "区块",
        "batch": "批次",
        "proof": "证明文件（JSON，供应用程序使用）",  # noqa: RUF001 (Chinese punctuation)
        "states": {"anchored": "已上链存证", "pending": "尚未上链", "failed": "记录已被改动"},
        "producer": "生产商",
        "best_before": "保质期至",
        "keep_at": "储存温度",
        "history": "流转记录",
        "time_title": "事件发生地的当地时间",
        "unnamed_site": "未登记的地点",
        "cold_chain": "全程温度",
        "cold_chain_desc": "温度来自存放地点的传感器，每 {bucket} 分钟一个数据点；"  # noqa: RUF001 (Chinese punctuation)
        "阴影带为允许范围 {low}…{high} °C。",
        "cold_chain_ok": "在有测量的地点，温度始终在允许范围 {low}…{high} °C 之内。",  # noqa: RUF001 (Chinese punctuation)
        "cold_chain_none": "存放地点没有温度记录。",
        "excursion": "在{place}有 {duration}温度达 {value} °C（允许范围 {low}…{high} °C）",  # noqa: RUF001 (Chinese punctuation)
        "excursions": "超出允许范围",
        "minutes": "{m} 分钟",
        "hours": "{h} 小时",
        "hours_minutes": "{h} 小时 {m} 分钟",
        "stay": "{place}：{since} 至 {until}",  # noqa: RUF001 (Chinese punctuation)
        "still_there": "现在",
        "check": "自己动手验证",
        "check_button": "验证这一步",
        "check_intro": "您的浏览器会根据事件哈希重新计算默克尔路径直至根哈希，"  # noqa: RUF001 (Chinese punctuation)
        "并通过您指定的区块链节点读取链上锚定的根哈希。整个过程不依赖本站的数据库。",
        "check_rpc": "区块链节点（JSON-RPC 地址）",  # noqa: RUF001 (Chinese punctuation)
        "check_contract": "锚定合约",
        "check_noscript": "在浏览器中验证需要启用 JavaScript。"
        "也可以下载某一步的证明文件，用 `tracefin verify` 自行验证。",  # noqa: RUF001 (Chinese punctuation)
        "check_messages": {
            "leaf": "由事件哈希计算叶子哈希",
            "left": "与左侧节点合并",
            "right": "与右侧节点合并",
            "path_ok": "路径通向证明中的根哈希",
            "path_bad": "路径无法通向证明中的根哈希",
            "chain": "链 ID",
            "chain_bad": "该节点所在的链与证明中的不一致",
            "contract": "锚定合约",
            "contract_bad": "该合约不是本站使用的锚定合约",
            "call": "链上该批次的根哈希",
            "root_ok": "链上的根哈希与证明一致",
            "root_bad": "链上的根哈希与证明不一致",
            "range_bad": "链上该批次覆盖的位置与证明不一致",
            "block": "上链区块",
            "valid": "有效：这一步记录包含在链上锚定的批次中",  # noqa: RUF001 (Chinese punctuation)
            "invalid": "无效：该证明与链上数据不符",  # noqa: RUF001 (Chinese punctuation)
            "error": "无法连接该节点",
            "check_rpc_missing": "请填写区块链节点的地址（http 或 https）",  # noqa: RUF001 (Chinese punctuation)
        },
        "counts": "责任方已确认",
        "unattested_total": "未经确认",
        "claim_by": "{org} 的单方声明，未经责任方确认",  # noqa: RUF001 (Chinese punctuation)
        "claim": "单方声明，未经责任方确认",  # noqa: RUF001 (Chinese punctuation)
        "colon": "：",  # noqa: RUF001 (Chinese punctuation)
        "comma": "，",  # noqa: RUF001 (Chinese punctuation)
        "recorded_by": "记录方",
        "recorded_by_org": "由 {org} 记录",
        "lp": "（",  # noqa: RUF001 (Chinese punctuation)
        "rp": "）",  # noqa: RUF001 (Chinese punctuation)
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
            "error_declared": "记录方已声明此记录有误",
        },
        "declared_erroneous": "{org} 已于 {time} 声明此记录有误",
        "declared_total": "已声明有误",
        "error_reasons": {
            "did_not_occur": "此事并未发生",
            "incorrect_data": "记录数据有误",
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
            "packing": "装箱待运",
            "inspecting": "质量检验",
            "receiving": "收货",
            "storing": "入库储存",
            "shipping": "发货",
            "departing": "出发配送",
            "arriving": "到达",
            "accepting": "买方签收",
            "retail_selling": "门店售出",
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
        "footer": "每一步都以 GS1 事件哈希标识并锚定在区块链上，任何人无需信任本站即可自行验证。",  # noqa: RUF001 (Chinese punctuation)
    },
}


# Dispositions the step's own words already say ("Shipped" is in transit, "Made" is active):
# the page names only those that tell a shopper something more.
SAID_BY_STEP = frozenset(
    {"active", "in_progress", "in_transit", "retail_sold", "sellable_not_accessible"}
)


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
