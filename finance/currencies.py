"""The ISO 4217 currencies tracefin lends, prices and repays in, with their minor units."""

from __future__ import annotations

from typing import Final


def _codes(text: str) -> tuple[str, ...]:
    return tuple(text.split())


# ISO 4217 List One as amended to 2025: every active code of a currency that circulates, with
# the number of digits of its minor unit. Left out on purpose (refused where money enters):
# - the X-codes that are no money: gold, silver, platinum, palladium (XAU XAG XPT XPD), the SDR
#   and other units of account (XDR XSU XUA, XBA-XBD), the test code XTS and "no currency" XXX.
#   The CFA francs (XAF XOF), the CFP franc (XPF) and the Eastern and Netherlands Caribbean
#   currencies (XCD XCG) are money that people use, and are in;
# - the fund codes, which index or settle but do not circulate (BOV CHE CHW CLF COU MXV USN
#   UYI UYW): a loan in Unidades de Fomento is a loan in CLP with an index, which the finance
#   rules do not model;
# - withdrawn codes (ANG after XCG, HRK, SLL, ZWL, CUC, MRO, STD, VEF).
ISO_4217_MINOR_UNITS: Final[dict[str, int]] = {
    **dict.fromkeys(_codes("BIF CLP DJF GNF ISK JPY KMF KRW PYG RWF UGX VND VUV XAF XOF XPF"), 0),
    **dict.fromkeys(_codes("BHD IQD JOD KWD LYD OMR TND"), 3),
    **dict.fromkeys(
        _codes(
            """
            AED AFN ALL AMD AOA ARS AUD AWG AZN BAM BBD BDT BGN BMD BND BOB BRL BSD BTN BWP BYN
            BZD CAD CDF CHF CNY COP CRC CUP CVE CZK DKK DOP DZD EGP ERN ETB EUR FJD FKP GBP GEL
            GHS GIP GMD GTQ GYD HKD HNL HTG HUF IDR ILS INR IRR JMD KES KGS KHR KPW KYD KZT LAK
            LBP LKR LRD LSL MAD MDL MGA MKD MMK MNT MOP MRU MUR MVR MWK MXN MYR MZN NAD NGN NIO
            NOK NPR NZD PAB PEN PGK PHP PKR PLN QAR RON RSD RUB SAR SBD SCR SDG SEK SGD SHP SLE
            SOS SRD SSP STN SVC SYP SZL THB TJS TMT TOP TRY TTD TWD TZS UAH USD UYU UZS VED VES
            WST XCD XCG YER ZAR ZMW ZWG
            """
        ),
        2,
    ),
}


def is_iso_currency(code: str) -> bool:
    """Whether `code` (upper case) is a currency of the table above."""
    return code in ISO_4217_MINOR_UNITS
