"""What a conversion or an impression earns: revenue from the advertiser, payout to
the affiliate, from the offer's payments in force at the event's time."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from app.catalog.model import Offer

THOUSAND = Decimal(1000)


@dataclass(frozen=True)
class Earning:
    revenue: Decimal
    payout: Decimal
    currency: str

    @property
    def profit(self) -> Decimal:
        return self.revenue - self.payout


NOTHING = Earning(Decimal(0), Decimal(0), "USD")


def cpa_earning(offer: Offer, goal: str) -> Earning | None:
    """The offer's CPA payment for ``goal``, or None when it pays nothing for it."""
    for payment in offer.payments:
        if payment.type == "CPA" and payment.goal == goal:
            return Earning(Decimal(payment.revenue), Decimal(payment.payout), payment.currency)
    return None


def cpm_earnings(offer: Offer) -> list[Earning]:
    """What one impression accrues under each of the offer's CPM payments: the price
    per thousand divided by 1000, exactly (Decimal, no rounding here)."""
    return [
        Earning(Decimal(p.revenue) / THOUSAND, Decimal(p.payout) / THOUSAND, p.currency)
        for p in offer.payments
        if p.type == "CPM"
    ]


def offer_currency(offer: Offer) -> str:
    """The currency an offer's impressions and clicks are counted in: that of its
    CPM payment, else of its first payment, else USD. Slices group money by
    currency; they never add different currencies together."""
    for payment in offer.payments:
        if payment.type == "CPM":
            return payment.currency
    return offer.payments[0].currency if offer.payments else NOTHING.currency


def impression_earning(offer: Offer) -> Earning:
    """What one recorded impression earns: its offer's CPM price / 1000 (the first
    CPM payment, in :func:`offer_currency`), or nothing for an offer without one."""
    earnings = cpm_earnings(offer)
    if earnings:
        return earnings[0]
    return Earning(Decimal(0), Decimal(0), offer_currency(offer))
