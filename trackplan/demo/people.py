"""Persons and devices of the simulation, and the Segment `context` each device sends."""

from __future__ import annotations

from . import params as P
from .rand import Stream, cumulative

REGION_CUM = cumulative(P.REGION_MIX)
SIZE_CUM = cumulative(P.SIZE_MIX)
DEVICES_CUM = cumulative(P.DEVICES_MIX)
CHANNEL_CUM = cumulative(P.CHANNEL_MIX)
RETURN_CUM = cumulative(P.RETURN_MIX)

WEB_UA = (
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_6) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.0 Safari/605.1.15",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/130.0.0.0 Safari/537.36",
    "Mozilla/5.0 (X11; Linux x86_64; rv:131.0) Gecko/20100101 Firefox/131.0",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 18_0 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.0 Mobile/15E148 Safari/604.1",
)
IOS_UA = (
    "AcmeBoards/4.2.1 (iPhone; iOS 18.0)",
    "AcmeBoards/4.3.0 (iPhone; iOS 18.1)",
    "AcmeBoards/3.9.2 (iPhone; iOS 17.5)",
)  # 3.x still sends the deprecated Task Exported
FIRST = (
    "ana",
    "ben",
    "chen",
    "dana",
    "eli",
    "fatima",
    "gus",
    "hana",
    "ivan",
    "jo",
    "kofi",
    "lena",
    "mateo",
    "nina",
    "omar",
    "priya",
    "quinn",
    "rosa",
    "sven",
    "tara",
    "umar",
    "vera",
    "wei",
    "xena",
    "yusuf",
    "zoe",
)
LAST = (
    "silva",
    "smith",
    "muller",
    "tanaka",
    "garcia",
    "kowalski",
    "nguyen",
    "okafor",
    "rossi",
    "dubois",
    "jensen",
    "kim",
    "lopez",
    "novak",
    "patel",
    "schmidt",
)


class Device:
    __slots__ = ("anon", "ctx", "kind", "user")

    def __init__(self, anon: str, kind: str, ctx: dict):
        self.anon = anon
        self.kind = kind  # web | ios
        self.ctx = ctx  # shared by every event of the device; copied only when page/campaign are added
        self.user: str | None = None  # userId once the person signed in on this device


class Person:
    __slots__ = (
        "a_ms",
        "a_up",
        "activated",
        "billing",
        "buy_ms",
        "channel",
        "churned",
        "consent_a",
        "consent_m",
        "creator",
        "devices",
        "email",
        "engagement",
        "ever_paid",
        "identified",
        "idx",
        "inviter",
        "kind",
        "n_obj",
        "name",
        "order_ms",
        "other_order",
        "p0",
        "paying",
        "plan",
        "pre_events",
        "price",
        "projects",
        "region",
        "seats",
        "server_ctx",
        "signup_ms",
        "size",
        "size_rank",
        "slack",
        "study",
        "tasks",
        "touches",
        "user_id",
        "variant",
        "ws",
    )

    def __init__(self, idx: int, kind: str):
        self.idx = idx
        self.kind = kind  # base | new | invitee
        self.touches: list[str] = []
        self.user_id: str | None = None
        self.signup_ms: int | None = None
        self.variant: str | None = None
        self.activated = False
        self.paying = self.ever_paid = self.churned = False
        self.plan = "free"
        self.seats = 0
        self.billing = "monthly"
        self.price = 0.0
        self.n_obj = 0
        self.projects: list[str] = []
        self.tasks: list[str] = []
        self.pre_events = 0
        self.identified = False
        self.study = False
        self.a_up = False
        self.a_ms: int | None = None
        self.other_order = False
        self.slack = False
        self.p0 = 0.0
        self.buy_ms: int | None = None
        self.inviter: int | None = None
        self.order_ms: int | None = None  # first Order Completed


def _ip(r: Stream) -> str:
    # TEST-NET-1 (RFC 5737): documentation addresses, never a real visitor's.
    return f"192.0.2.{r.i(1, 254)}"


def device_context(r: Stream, region: str, kind: str, consent_a: bool, consent_m: bool, locale: str) -> dict:
    if kind == "ios":
        lib = {"name": "analytics-ios", "version": "4.1.8"}
        ua = r.ch(IOS_UA)
    else:
        lib = {"name": "analytics.js", "version": "2.11.1"}
        ua = r.ch(WEB_UA)
    return {
        "library": lib,
        "ip": _ip(r),
        "userAgent": ua,
        "locale": locale,
        "location": {"region": region},
        "consent": {"categoryPreferences": {"necessary": True, "analytics": consent_a, "marketing": consent_m}},
    }


def server_context(region: str, consent_a: bool, consent_m: bool) -> dict:
    return {
        "library": {"name": "analytics-python", "version": "2.3.3"},
        "location": {"region": region},
        "consent": {"categoryPreferences": {"necessary": True, "analytics": consent_a, "marketing": consent_m}},
    }


def make_person(r: Stream, idx: int, kind: str, anon_ids, region: str | None = None, size: str | None = None) -> Person:
    """A person with region, company size, consent and 1-3 devices (web, then iOS app, then another browser)."""
    p = Person(idx, kind)
    p.region = region or r.wch(P.REGIONS, REGION_CUM)
    p.size = size or r.wch(P.SIZES, SIZE_CUM)
    p.size_rank = P.SIZES.index(p.size) + 1
    p.engagement = min(4.0, r.exp(1.0) * 0.7 + 0.3)
    p.consent_a = r.u() < P.CONSENT_ANALYTICS
    p.consent_m = r.u() < P.CONSENT_MARKETING
    locale = r.ch(P.REGION_LOCALES[p.region])
    n_dev = r.wch((1, 2, 3), DEVICES_CUM)
    kinds = ("web", "ios", "web")[:n_dev]
    p.devices = [
        Device(next(anon_ids), k, device_context(r, p.region, k, p.consent_a, p.consent_m, locale)) for k in kinds
    ]
    p.server_ctx = server_context(p.region, p.consent_a, p.consent_m)
    p.channel = "existing"
    first, last = r.ch(FIRST), r.ch(LAST)
    p.name = f"{first.title()} {last.title()}"
    p.email = f"{first}.{last}.{idx}@{'co' + format(idx % 997, 'x')}.example"
    p.ws = f"ws_{idx:x}"
    p.creator = True
    p.user_id = None
    return p
