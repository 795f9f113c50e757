"""Catalog entities as plain, immutable values (validated in :mod:`.validation`)."""

from __future__ import annotations

from dataclasses import dataclass, field

MAX_ID = 2**31 - 1
"""IDs of offers, affiliates and advertisers are 1..MAX_ID (32-bit signed, as stored)."""

OFFER_STATUSES = ("active", "paused", "stopped", "deleted")
PARTNER_STATUSES = ("active", "pending", "inactive", "blocked", "deleted")
ACCESS_MODES = ("public", "approval")
PAYMENT_TYPES = ("CPA", "CPM")

DAY = 86_400
DEFAULT_VIEW_THROUGH_WINDOW = DAY
DEFAULT_CLICK_SESSION = 30 * DAY


@dataclass(frozen=True)
class Advertiser:
    id: int
    name: str
    status: str = "active"


@dataclass(frozen=True)
class AffiliatePostback:
    """A URL the affiliate is notified at when one of its conversions is made or
    changes status (Affise's affiliate postback), for the conversion ``statuses``
    listed (every status when none are).

    On an affiliate it is one of its global postback URLs. On an offer it overrides
    them: for the ``affiliates`` listed, else for every affiliate of the offer (the
    pattern of personal payments, :class:`Payment`).
    """

    url: str
    statuses: tuple[str, ...] = ()
    affiliates: tuple[int, ...] = ()


@dataclass(frozen=True)
class Affiliate:
    id: int
    name: str
    status: str = "active"
    postback_urls: tuple[AffiliatePostback, ...] = ()


@dataclass(frozen=True)
class Destination:
    """An additional impressions destination URL and its share in percent."""

    url: str
    weight: int


@dataclass(frozen=True)
class Payment:
    """What the advertiser pays (revenue) and the affiliate earns (payout) per goal.

    CPM prices are per thousand impressions; CPA prices per conversion. A payment
    listing ``affiliates`` is personal (Affise's personal payouts): for those
    affiliates it replaces the offer's payment of the same type and goal.
    """

    type: str
    revenue: str
    payout: str
    currency: str = "USD"
    goal: str = "1"
    affiliates: tuple[int, ...] = ()


@dataclass(frozen=True)
class Offer:
    id: int
    title: str
    advertiser_id: int
    status: str = "active"
    access: str = "public"
    allow_impressions: bool = False
    impressions_url: str | None = None
    additional_impressions_urls: tuple[Destination, ...] = ()
    tracking_url: str | None = None
    trafficback_url: str | None = None
    view_through_window: int = DEFAULT_VIEW_THROUGH_WINDOW
    click_session: int = DEFAULT_CLICK_SESSION
    payments: tuple[Payment, ...] = ()
    postback_token: str | None = None
    postback_ip_whitelist: tuple[str, ...] = ()
    affiliate_postbacks: tuple[AffiliatePostback, ...] = ()

    @property
    def main_url_weight(self) -> int:
        """The main impressions URL takes what the additional URLs leave of 100."""
        return 100 - sum(d.weight for d in self.additional_impressions_urls)


@dataclass
class Catalog:
    """The whole catalog, as every process holds it in memory."""

    advertisers: dict[int, Advertiser] = field(default_factory=dict)
    offers: dict[int, Offer] = field(default_factory=dict)
    affiliates: dict[int, Affiliate] = field(default_factory=dict)
    # (offer_id, pid) pairs approved for offers whose access is "approval".
    enabled: set[tuple[int, int]] = field(default_factory=set)
    # (offer_id, pid) pairs barred from an offer, whatever its access.
    disabled: set[tuple[int, int]] = field(default_factory=set)
    # (advertiser_id, pid): the affiliate may run none of the advertiser's offers.
    advertiser_blocks: set[tuple[int, int]] = field(default_factory=set)

    def copy(self) -> Catalog:
        """An independent copy; entities are immutable, so they are shared."""
        return Catalog(
            dict(self.advertisers),
            dict(self.offers),
            dict(self.affiliates),
            set(self.enabled),
            set(self.disabled),
            set(self.advertiser_blocks),
        )
