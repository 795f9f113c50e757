"""What a conversion or an impression earns: revenue from the advertiser, payout to
the affiliate, from the offer's payments in force at the event's time."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from app.catalog.model import Offer, Payment

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


def _payments_for(offer: Offer, pid: int | None) -> list[Payment]:
    """The payments that apply to affiliate ``pid``: its personal ones first, then
    the offer's own (the first that matches wins)."""
    personal = [p for p in offer.payments if pid is not None and pid in p.affiliates]
    return personal + [p for p in offer.payments if not p.affiliates]


def cpa_earning(offer: Offer, goal: str, pid: int | None = None) -> Earning | None:
    """The CPA payment for ``goal`` of affiliate ``pid`` (its personal one, else the
    offer's), or None when it pays nothing for it."""
    for payment in _payments_for(offer, pid):
        if payment.type == "CPA" and payment.goal == goal:
            return Earning(Decimal(payment.revenue), Decimal(payment.payout), payment.currency)
    return None


def cpm_earnings(offer: Offer, pid: int | None = None) -> list[Earning]:
    """What one impression of affiliate ``pid`` accrues under each CPM payment that
    applies to it: the price per thousand divided by 1000, exactly (Decimal)."""
    return [
        Earning(Decimal(p.revenue) / THOUSAND, Decimal(p.payout) / THOUSAND, p.currency)
        for p in _payments_for(offer, pid)
        if p.type == "CPM"
    ]


def offer_currency(offer: Offer) -> str:
    """The currency an offer's impressions and clicks are counted in: that of its
    CPM payment, else of its first payment, else USD. Slices group money by
    currency; they never add different currencies together."""
    for payment in _payments_for(offer, None):
        if payment.type == "CPM":
            return payment.currency
    return offer.payments[0].currency if offer.payments else NOTHING.currency


def impression_earning(offer: Offer, pid: int | None = None) -> Earning:
    """What one recorded impression of affiliate ``pid`` earns: the CPM price / 1000
    of its personal CPM payment, else of the offer's first, or nothing without one."""
    earnings = cpm_earnings(offer, pid)
    if earnings:
        return earnings[0]
    return Earning(Decimal(0), Decimal(0), offer_currency(offer))
