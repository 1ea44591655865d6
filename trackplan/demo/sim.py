"""The day-by-day simulation: who arrives, signs up, uses the product, buys, renews and churns.

State lives in `Person` objects; what can be vectorized (who is active today, the upgrade hazard)
is drawn with numpy. Events are plain dicts without time fields; `Simulation.take_day` hands the
day's events to the landing writer, so memory stays bounded by one day plus a short carry-over.
"""

from __future__ import annotations

import heapq
import math
from datetime import UTC, date, datetime

import numpy as np

from . import params as P
from .people import CHANNEL_CUM, RETURN_CUM, Device, Person, make_person
from .rand import Stream, cumulative

DAY = 86_400_000
HOUR = 3_600_000
MIN = 60_000
WEB, IOS, SERVER = 0, 1, 2
FLAG_MKT_DECLINED = 1  # event of the marketing category from a person who declined marketing

PRODUCT_EVENTS = (
    "Task Created",
    "Task Completed",
    "Comment Added",
    "File Uploaded",
    "Search Performed",
    "Project Created",
    "Report Exported",
)
PRODUCT_CUM = cumulative((0.28, 0.22, 0.18, 0.08, 0.14, 0.05, 0.05))
SITE_PAGES = (
    ("/", "Acme Boards"),
    ("/features", "Features"),
    ("/pricing", "Pricing"),
    ("/templates", "Templates"),
    ("/blog/remote-standups", "Remote stand-ups that work"),
    ("/blog/kanban-vs-scrum", "Kanban vs Scrum"),
    ("/customers", "Customers"),
)
APP_PAGES = (
    ("/app/projects", "Projects"),
    ("/app/tasks", "My tasks"),
    ("/app/inbox", "Inbox"),
    ("/app/reports", "Reports"),
    ("/app/settings", "Settings"),
)
SCREENS = (
    ("Board", "BoardViewController"),
    ("Task", "TaskDetailViewController"),
    ("Inbox", "InboxViewController"),
    ("Search", "SearchViewController"),
)
ONBOARDING_STEPS = ("profile", "first_project", "invite", "integration", "template")
URL = "https://acme.example"


def ms_of(d: date) -> int:
    return int(datetime(d.year, d.month, d.day, tzinfo=UTC).timestamp() * 1000)


class Simulation:
    """Runs the world one UTC day at a time; see `day()` and `take_day()`."""

    def __init__(self, plan, rng: np.random.Generator, start: date, days: int, users: int):
        self.plan = plan
        self.rng = rng
        self.r = Stream(rng)
        self.start, self.days, self.users = start, days, users
        self.t0 = ms_of(start)
        self.t_end = self.t0 + days * DAY
        self.persons: list[Person] = []
        self.rate = np.zeros(max(1024, users * 2))  # daily session propensity; 0 = not a signed-up user
        self.agenda: list = []  # heap of (t_ms, seq, action, person, extra)
        self._seq = 0
        self.buf: list = []  # (t_ms, lag class, flags, event dict)
        self._anon = self._anon_ids()
        self.visitor_days = np.zeros((days, len(P.CHANNELS)), dtype=np.int64)  # arriving visitors per channel
        m = plan.metrics
        exp = next((e for e in m.experiments if e.key == "onboarding_checklist"), None)
        self.exp = exp
        self.exp_ms = ms_of(date.fromisoformat(exp.start)) if exp and exp.start else None
        inits = {i.key: i for i in m.initiatives}
        self.inits = inits
        self.chat_ms = ms_of(date.fromisoformat(inits["eu_live_chat"].start)) if "eu_live_chat" in inits else None
        self.slack_ms = (
            ms_of(date.fromisoformat(inits["slack_integration"].start)) if "slack_integration" in inits else None
        )
        self.pricing_ms = (
            ms_of(date.fromisoformat(inits["new_pricing_page"].start)) if "new_pricing_page" in inits else None
        )
        self.slack_day = (
            (self.slack_ms - self.t0) // DAY if self.slack_ms and self.t0 < self.slack_ms < self.t_end else None
        )
        self.wk = np.array([P.WEEKDAY[date.fromordinal(start.toordinal() + k).weekday()] for k in range(days)])
        self.counts_pre = self.slack_day is not None
        self.truth_study: dict = {}
        self.renewals: dict[str, list[int]] = {}  # churn group -> [renewals due, cancellations]
        self._init_base()

    # -- helpers ---------------------------------------------------------------------------------
    def _anon_ids(self):
        from .rand import uuids

        while True:
            yield from uuids(self.rng, 4096)

    def _schedule(self, t: int, action: str, p: Person, extra=None) -> None:
        if t < self.t_end:
            self._seq += 1
            heapq.heappush(self.agenda, (t, self._seq, action, p.idx, extra))

    def _add_person(self, p: Person) -> None:
        self.persons.append(p)
        if p.idx >= len(self.rate):
            self.rate = np.concatenate([self.rate, np.zeros(len(self.rate))])

    def _day_time(self, day_ms: int, region: str) -> int:
        """A time on this UTC day, following the region's local working-hour curve."""
        off = P.REGION_UTC_OFFSET[region]
        cum = _HOURLY_CUM
        x = self.r.u()
        h = 0
        while cum[h] < x:
            h += 1
        utc_h = (h - off) % 24
        return day_ms + utc_h * HOUR + int(self.r.u() * HOUR)

    def emit(self, p: Person, dev: Device | None, t: int, type_: str, body: dict, flags: int = 0) -> dict:
        """Queue one message; `dev=None` means sent server-side (analytics-python, userId only)."""
        ev = {"type": type_, **body}
        if dev is None:
            ev["userId"] = p.user_id
            ev.setdefault("context", p.server_ctx)
            lag = SERVER
        else:
            ev["anonymousId"] = dev.anon
            if dev.user is not None:
                ev["userId"] = dev.user
            ev.setdefault("context", dev.ctx)
            lag = IOS if dev.kind == "ios" else WEB
        self.buf.append((t, lag, flags, ev))
        if self.counts_pre and t < self.slack_ms:
            p.pre_events += 1
        return ev

    def track(self, p: Person, dev: Device | None, t: int, name: str, props: dict, flags: int = 0) -> dict:
        return self.emit(p, dev, t, "track", {"event": name, "properties": props}, flags)

    def page(
        self, p: Person, dev: Device, t: int, path: str, title: str, referrer: str = "", campaign: dict | None = None
    ) -> None:
        url = URL + path
        props = {"path": path, "url": url, "title": title}
        ctx_page = {"path": path, "url": url, "title": title}
        if referrer:
            props["referrer"] = referrer
            ctx_page["referrer"] = referrer
        ctx = {**dev.ctx, "page": ctx_page}
        if campaign is not None:
            q = f"?utm_source={campaign['source']}&utm_medium={campaign['medium']}&utm_campaign={campaign['name']}"
            props["search"] = q
            props["url"] = ctx_page["url"] = url + q
            ctx_page["search"] = q
            ctx["campaign"] = campaign
        self.emit(p, dev, t, "page", {"name": title, "properties": props, "context": ctx})

    def _new_id(self, p: Person, prefix: str) -> str:
        p.n_obj += 1
        return f"{prefix}_{p.idx:x}o{p.n_obj:x}"

    def _project(self, p: Person) -> str:
        if not p.projects:
            p.projects.append(self._new_id(p, "prj"))
        return self.r.ch(p.projects)

    # -- population ------------------------------------------------------------------------------
    def _init_base(self) -> None:
        r = self.r
        for i in range(self.users):
            p = make_person(r, i, "base", self._anon)
            p.user_id = f"usr_{i:x}"
            p.signup_ms = self.t0 - int(r.uni(20, 400) * DAY)
            p.activated = True
            for d in p.devices:
                d.user = p.user_id
            p.projects = [self._new_id(p, "prj") for _ in range(r.i(1, 4))]
            if r.u() < P.BASE_PAYING:
                self._start_subscription(p, renew_at=self.t0 + int(r.uni(0, 30) * DAY))
            self._add_person(p)
            self.rate[i] = P.BASE_ACTIVE * p.engagement * (P.PAID_ACTIVITY if p.paying else 1.0)
        self._init_hazard()

    def _init_hazard(self) -> None:
        """Upgrade hazard of free existing accounts: first-fire day with and without the pricing launch.

        One Exp(1) draw per account against two cumulative hazards (common random numbers) gives the
        factual and the counterfactual order day, so the launch's true effect on daily orders is
        known exactly, not only in expectation.
        """
        days = np.arange(self.days)
        h0 = P.UPGRADE_HAZARD * self.wk
        post = np.zeros(self.days, dtype=bool)
        if self.pricing_ms is not None:
            post = (self.t0 + days * DAY) >= self.pricing_ms
        lam_cf = np.cumsum(h0)
        lam = np.cumsum(h0 + P.PRICING_HAZARD_LIFT * self.wk * post)
        e = self.rng.exponential(1.0, self.users)
        self.fire = np.searchsorted(lam, e, side="left")  # == days when it never fires in the window
        self.fire_cf = np.searchsorted(lam_cf, e, side="left")
        self.pricing_post = post
        self.free_at_start = [i for i in range(self.users) if not self.persons[i].paying]
        self.fire_by_day: dict[int, list[int]] = {}
        for i in self.free_at_start:
            if self.fire[i] < self.days:
                self.fire_by_day.setdefault(int(self.fire[i]), []).append(i)

    # -- the day ---------------------------------------------------------------------------------
    def day(self, k: int) -> None:
        """Simulate UTC day `k` of the window (its events go to `self.buf`)."""
        day_ms = self.t0 + k * DAY
        r = self.r
        if self.slack_day is not None and k == self.slack_day:
            self._slack_study()
            self.counts_pre = False
        # new visitors
        n_new = int(self.rng.poisson(self.users * P.ARRIVALS_PER_USER * self.wk[k]))
        for _ in range(n_new):
            p = make_person(r, len(self.persons), "new", self._anon)
            p.channel = r.wch(P.CHANNELS, CHANNEL_CUM)
            self._add_person(p)
            self.visitor_days[k, P.CHANNELS.index(p.channel)] += 1
            self._plan_visits(p, self._day_time(day_ms, p.region))
        # existing free accounts upgrading (the hazard the pricing page moves)
        for i in self.fire_by_day.get(k, ()):
            p = self.persons[i]
            if not p.ever_paid:
                self._schedule(self._day_time(day_ms, p.region), "buy", p)
        # routine product sessions
        n = len(self.persons)
        draw = self.rng.random(n)
        active = np.flatnonzero(draw < self.rate[:n] * self.wk[k]).tolist()
        lam = self.rng.poisson(P.EVENTS_PER_SESSION, len(active)).tolist()
        for i, n_ev in zip(active, lam):
            p = self.persons[i]
            self._session(p, self._day_time(day_ms, p.region), n_ev)
        # scheduled actions of the day, in time order
        end = day_ms + DAY
        while self.agenda and self.agenda[0][0] < end:
            t, _, action, idx, extra = heapq.heappop(self.agenda)
            getattr(self, "_a_" + action)(self.persons[idx], t, extra)

    # -- acquisition -----------------------------------------------------------------------------
    def _plan_visits(self, p: Person, t: int) -> None:
        r = self.r
        extra = r.poisson(P.EXTRA_VISITS_MEAN)
        times = [t] + sorted(t + int(r.uni(0.3, 10.0) * DAY) for _ in range(extra))
        chans = [p.channel] + [r.wch(P.RETURN_CHANNELS, RETURN_CUM) for _ in range(extra)]
        signs = r.u() < P.SIGNUP_RATE[p.channel]
        for j, (tv, ch) in enumerate(zip(times, chans)):
            self._schedule(tv, "visit", p, (ch, signs and j == len(times) - 1, j))

    def _a_visit(self, p: Person, t: int, extra) -> None:
        channel, signs_up, j = extra
        r = self.r
        webs = [d for d in p.devices if d.kind == "web"]
        dev = webs[0] if j == 0 or len(webs) == 1 or r.u() < 0.7 else webs[1]
        p.touches.append(channel)
        campaign = r.ch(P.CAMPAIGNS[channel])
        ref = {"organic": "https://www.google.com/", "referral": "https://blog.partner.example/"}.get(channel, "")
        path, title = SITE_PAGES[0] if j == 0 or r.u() < 0.5 else r.ch(SITE_PAGES)
        self.page(p, dev, t, path, title, ref, campaign)
        if channel in P.AD_NETWORK:
            flags = 0 if p.consent_m else FLAG_MKT_DECLINED
            self.track(
                p,
                dev,
                t + 150,
                "Ad Clicked",
                {"ad_id": f"ad_{channel}_{r.i(1, 12)}", "network": P.AD_NETWORK[channel]},
                flags,
            )
        t += int(r.exp(40_000)) + 2000
        for _ in range(r.i(0, 3)):
            path, title = r.ch(SITE_PAGES)
            self.page(p, dev, t, path, title, URL + "/")
            if path == "/pricing" and r.u() < 0.4:
                self._product_viewed(p, dev, t + 900)
            t += int(r.exp(50_000)) + 2000
        if signs_up:
            self._signup(p, dev, t)

    def _signup(self, p: Person, dev: Device, t: int, invited_by: Person | None = None) -> None:
        r = self.r
        method = r.wch(("email", "google", "github", "sso"), _METHOD_CUM)
        self.page(p, dev, t, "/signup", "Sign up", URL + "/pricing" if invited_by is None else "")
        self.track(p, dev, t + 1500, "Signup Started", {"signup_method": method})
        t += int(r.uni(40, 180) * 1000)
        p.user_id = f"usr_{p.idx:x}"
        dev.user = p.user_id
        p.signup_ms = t
        props = {"signup_method": method, "plan": "free", "workspace_id": p.ws, "email": p.email}
        if r.u() < 0.9:  # the form field is optional
            props["company_size"] = p.size
        self.track(p, dev, t, "Account Created", props)
        self.emit(
            p,
            dev,
            t + 50,
            "identify",
            {
                "traits": {
                    "email": p.email,
                    "name": p.name,
                    "plan": "free",
                    "company_size": p.size,
                    "region": p.region,
                    "created_at": _iso(t),
                }
            },
        )
        if invited_by is None:
            self.track(
                p, dev, t + 400, "Workspace Created", {"workspace_id": p.ws, "name": f"{p.name.split()[1]} team"}
            )
            self.emit(
                p,
                dev,
                t + 450,
                "group",
                {
                    "groupId": p.ws,
                    "traits": {
                        "name": f"{p.name.split()[1]} team",
                        "employees": r.i(*P.SIZE_EMPLOYEES[p.size]),
                        "plan": "free",
                    },
                },
            )
        else:
            self.track(p, dev, t + 400, "Invite Accepted", {"workspace_id": p.ws, "role": "member"})
        self.track(p, dev, t + int(r.uni(60, 900) * 1000), "Email Verified", {})
        # A/B: exposure at signup, then 7-day activation drawn with the variant's planted rate
        lift = 0.0
        if self.exp_ms is not None and t >= self.exp_ms:
            p.variant = "control" if r.u() < 0.5 else "checklist"
            self.track(
                p,
                dev,
                t + 600,
                "Experiment Viewed",
                {
                    "experiment_id": self.exp.key,
                    "experiment_name": "Onboarding checklist",
                    "variation_id": p.variant,
                    "variation_name": p.variant.title(),
                },
            )
            if p.variant == "checklist":
                lift = P.CHECKLIST_LIFT[p.size]
        p.activated = r.u() < P.ACTIVATION_BASE + lift
        steps = r.i(1, 5) if p.variant == "checklist" else r.i(0, 3)
        ts = t + 30_000
        for s in range(steps):
            ts += int(r.exp(90_000)) + 5000
            self.track(p, dev, ts, "Onboarding Step Completed", {"step_name": ONBOARDING_STEPS[s], "step_index": s + 1})
        if steps == 5 or (steps >= 3 and r.u() < 0.5):
            self.track(p, dev, ts + 2000, "Onboarding Completed", {"duration_seconds": (ts + 2000 - t) // 1000})
        # scheduled task completions that make (or not) the 7-day activation
        k = r.i(4, 6) if p.activated else r.wch((0, 1, 2), _NONACT_CUM)
        for _ in range(k):
            self._schedule(t + int(r.uni(0.02, 6.4) * DAY), "tc", p)
        if invited_by is None and r.u() < P.INVITE_FIRST_WEEK:
            self._schedule(t + int(r.uni(0.01, 5.0) * DAY), "invite", p)
        self._decide_purchase(p, t)
        self.rate[p.idx] = P.NEW_ACTIVE * p.engagement * (1.4 if p.activated else 1.0)

    def purchase_probability(self, p: Person, t: int) -> float:
        """The planted purchase model of new accounts: the probability of an order within 28 days of
        a signup at `t` (a LinkedIn touch multiplies its core part by LINKEDIN_TOUCH_MULT)."""
        core = P.BUY_CORE + P.BUY_ACTIVATED * p.activated + P.BUY_SIZE * (p.size_rank - 1)
        mult = P.CHANNEL_BUY_MULT[p.channel] * (P.LINKEDIN_TOUCH_MULT if "linkedin" in p.touches else 1.0)
        pb = core * mult + P.REGION_BUY_OFFSET[p.region]
        if self.chat_ms is not None and p.region == "eu" and t >= self.chat_ms:
            pb += P.CHAT_LIFT
        return pb

    def _decide_purchase(self, p: Person, t: int) -> None:
        """Draws the purchase of a new account from `purchase_probability`."""
        r = self.r
        if r.u() < self.purchase_probability(p, t):
            p.buy_ms = t + int(r.uni(*P.BUY_DELAY_DAYS) * DAY)
            self._schedule(p.buy_ms, "buy", p)
        elif r.u() < 0.3:
            self._schedule(t + int(r.uni(1, 20) * DAY), "browse_pricing", p)

    # -- product use -----------------------------------------------------------------------------
    def _pick_device(self, p: Person) -> Device:
        return p.devices[0] if len(p.devices) == 1 or self.r.u() < 0.6 else self.r.ch(p.devices[1:])

    def _login(self, p: Person, dev: Device, t: int) -> int:
        """A device the person never used signed-in: anonymous first, then Signed In links both ids."""
        r = self.r
        if dev.kind == "web":
            self.page(p, dev, t, "/login", "Log in")
            t += 8000
        dev.user = p.user_id
        self.track(
            p,
            dev,
            t,
            "Signed In",
            {
                "method": r.ch(("password", "google", "github", "sso")),
                "platform": "ios" if dev.kind == "ios" else "web",
            },
        )
        return t + 3000

    def _session(self, p: Person, t: int, n_ev: int) -> None:
        r = self.r
        dev = self._pick_device(p)
        if dev.user is None:
            t = self._login(p, dev, t)
        if not p.identified and p.kind == "base":
            p.identified = True
            self.emit(
                p,
                dev,
                t,
                "identify",
                {
                    "traits": {
                        "email": p.email,
                        "name": p.name,
                        "plan": p.plan,
                        "company_size": p.size,
                        "region": p.region,
                        "created_at": _iso(p.signup_ms),
                    }
                },
            )
        ios = dev.kind == "ios"
        plat = "ios" if ios else "web"
        young = p.signup_ms is not None and t - p.signup_ms < 7 * DAY
        for j in range(n_ev + 1):
            if ios:
                name, cls = r.ch(SCREENS)
                self.emit(p, dev, t, "screen", {"name": name, "properties": {"screen_class": cls}})
            elif j == 0 or r.u() < 0.3:
                path, title = r.ch(APP_PAGES)
                self.page(p, dev, t, path, title)
            t += int(r.exp(20_000)) + 800
            if j == n_ev:
                break
            kind = r.wch(PRODUCT_EVENTS, PRODUCT_CUM)
            if kind == "Task Completed" and young:
                kind = "Task Created"  # first-week completions are planted by `_a_tc`
            self._product_event(p, dev, t, kind, plat)
            t += int(r.exp(45_000)) + 1500
        self._extras(p, dev, t)

    def _product_event(self, p: Person, dev: Device, t: int, kind: str, plat: str) -> None:
        r = self.r
        if kind == "Task Created":
            tid = self._new_id(p, "tsk")
            p.tasks.append(tid)
            if len(p.tasks) > 20:
                del p.tasks[0]
            self.track(
                p,
                dev,
                t,
                kind,
                {"task_id": tid, "project_id": self._project(p), "platform": plat, "has_due_date": r.u() < 0.4},
            )
        elif kind == "Task Completed":
            tid = p.tasks.pop() if p.tasks else self._new_id(p, "tsk")
            self.track(
                p,
                dev,
                t,
                kind,
                {
                    "task_id": tid,
                    "project_id": self._project(p),
                    "platform": plat,
                    "time_to_complete_hours": round(r.exp(30.0), 2),
                },
            )
        elif kind == "Comment Added":
            tid = r.ch(p.tasks) if p.tasks else self._new_id(p, "tsk")
            self.track(
                p,
                dev,
                t,
                kind,
                {"task_id": tid, "length": int(r.exp(120)) + 1, "mentions": r.wch((0, 1, 2), _MENTION_CUM)},
            )
        elif kind == "File Uploaded":
            tid = r.ch(p.tasks) if p.tasks else self._new_id(p, "tsk")
            self.track(
                p,
                dev,
                t,
                kind,
                {
                    "task_id": tid,
                    "file_size_bytes": int(r.exp(800_000)) + 100,
                    "file_type": r.ch(("pdf", "png", "jpg", "docx", "xlsx", "csv")),
                },
            )
        elif kind == "Search Performed":
            self.track(p, dev, t, kind, {"query_length": r.i(2, 40), "results_count": int(r.exp(25))})
        elif kind == "Project Created":
            pid = self._new_id(p, "prj")
            p.projects.append(pid)
            self.track(
                p,
                dev,
                t,
                kind,
                {
                    "project_id": pid,
                    "workspace_id": p.ws,
                    "platform": plat,
                    "template": r.ch(("blank", "kanban", "roadmap", "sprint", "crm")),
                },
            )
        else:  # exports: the old iOS app still sends the deprecated name
            if dev.kind == "ios" and dev.ctx["userAgent"].startswith("AcmeBoards/3."):
                self.track(p, dev, t, "Task Exported", {"format": r.ch(("csv", "pdf"))})
            else:
                self.track(
                    p, dev, t, "Report Exported", {"format": r.ch(("csv", "pdf", "xlsx")), "row_count": int(r.exp(300))}
                )

    def _extras(self, p: Person, dev: Device, t: int) -> None:
        """Rare per-session events: tickets, surveys, chat, invites, other integrations."""
        r = self.r
        eu_chat = self.chat_ms is not None and p.region == "eu" and t >= self.chat_ms
        if eu_chat and dev.kind == "web" and r.u() < P.CHAT_OPEN_RATE:
            self.track(p, dev, t, "Chat Widget Opened", {"page_path": r.ch(APP_PAGES)[0]})
            t += 30_000
        if r.u() < P.TICKET_RATE * (P.CHAT_TICKET_MULT if eu_chat else 1.0):
            self.track(
                p,
                dev,
                t,
                "Support Ticket Created",
                {
                    "channel": r.ch(("email", "chat", "form")) if eu_chat else r.ch(("email", "phone", "form")),
                    "topic": r.ch(("billing", "bug", "how_to", "how_to", "account", "other")),
                },
            )
            t += 10_000
        if r.u() < P.SURVEY_RATE:
            mean = P.NPS_BASE_MEAN + (P.CHAT_NPS_LIFT if eu_chat else 0.0) + (0.5 if p.paying else 0.0)
            score = int(min(10, max(0, round(mean + 2.0 * _gauss(r)))))
            q = "nps_2026q3" if t < ms_of(date(2026, 10, 1)) else "nps_2026q4"
            self.track(p, dev, t, "Survey Responded", {"score": score, "survey_id": q})
        if r.u() < P.INVITE_PER_SESSION:
            self._a_invite(p, t, None, dev)
        if r.u() < 0.004:
            self.track(
                p,
                dev,
                t,
                "Integration Connected",
                {"integration": r.ch(("github", "jira", "google_drive", "zapier")), "workspace_id": p.ws},
            )

    def _a_tc(self, p: Person, t: int, _extra) -> None:
        dev = self._pick_device(p)
        if dev.user is None:
            t = self._login(p, dev, t)
        plat = "ios" if dev.kind == "ios" else "web"
        self._product_event(p, dev, t, "Task Created", plat)
        self._product_event(p, dev, t + int(self.r.uni(20, 600) * 1000), "Task Completed", plat)

    def _a_invite(self, p: Person, t: int, _extra, dev: Device | None = None) -> None:
        r = self.r
        dev = dev or p.devices[0]
        if dev.user is None:
            t = self._login(p, dev, t)
        n = r.wch((1, 2, 3), _INVITE_N_CUM)
        for j in range(n):
            first, last = (
                r.ch(("alex", "sam", "kim", "lee", "max", "noa", "ray")),
                r.ch(("berg", "costa", "ito", "ward")),
            )
            self.track(
                p,
                dev,
                t + j * 4000,
                "Invite Sent",
                {
                    "workspace_id": p.ws,
                    "invitee_email": f"{first}.{last}.{p.idx:x}{j}@co{p.idx % 997:x}.example",
                    "role": r.wch(("member", "admin", "guest"), _ROLE_CUM),
                    "invite_count": 1,
                },
            )
            if r.u() < P.INVITE_ACCEPT:
                self._schedule(t + int(r.uni(0.02, 3.0) * DAY), "invitee", p)

    def _a_invitee(self, inviter: Person, t: int, _extra) -> None:
        """The invited teammate becomes a new person who signs up through the invite link."""
        p = make_person(self.r, len(self.persons), "invitee", self._anon, region=inviter.region, size=inviter.size)
        p.channel = "referral"
        p.ws, p.creator, p.inviter = inviter.ws, False, inviter.idx
        self._add_person(p)
        dev = p.devices[0]
        p.touches.append("referral")
        self.page(p, dev, t, "/invite/accept", "Join your team", "", P.INVITE_CAMPAIGN)
        self._signup(p, dev, t + 20_000, invited_by=inviter)

    # -- money -----------------------------------------------------------------------------------
    def _product_viewed(self, p: Person, dev: Device, t: int, plan: str = "team") -> None:
        self.track(
            p,
            dev,
            t,
            "Product Viewed",
            {
                "product_id": f"prd_{plan}_monthly",
                "name": f"{plan.title()} plan",
                "price": P.PLANS[plan],
                "currency": P.CURRENCY[p.region],
                "category": "plan",
            },
        )

    def _a_browse_pricing(self, p: Person, t: int, _extra) -> None:
        """A free account looks at plans, sometimes starts checkout, and leaves."""
        r = self.r
        dev = p.devices[0]
        if dev.user is None:
            t = self._login(p, dev, t)
        self.page(p, dev, t, "/pricing", "Pricing")
        self._product_viewed(p, dev, t + 2000, r.ch(("team", "business")))
        if r.u() < 0.35:
            self.track(
                p,
                dev,
                t + 40_000,
                "Checkout Started",
                {"order_id": self._new_id(p, "ord"), "value": P.PLANS["team"] * 5, "currency": P.CURRENCY[p.region]},
            )

    def _start_subscription(self, p: Person, renew_at: int | None = None) -> None:
        r = self.r
        p.plan = "business" if r.u() < P.BUSINESS_SHARE else "team"
        p.seats = r.i(*P.SIZE_SEATS[p.size])
        p.billing = "annual" if r.u() < P.ANNUAL_SHARE else "monthly"
        p.price = round(P.PLANS[p.plan] * p.seats * (10 if p.billing == "annual" else 1), 2)
        p.paying = p.ever_paid = True
        if p.billing == "monthly" and renew_at is not None:
            self._schedule(renew_at, "renew", p)

    def _a_buy(self, p: Person, t: int, extra) -> None:
        """The checkout funnel ending in Order Completed (sent server-side)."""
        if p.ever_paid:
            return
        r = self.r
        dev = p.devices[0]
        if dev.user is None:
            t = self._login(p, dev, t)
        self._start_subscription(p, renew_at=None)
        cur = P.CURRENCY[p.region]
        self.page(p, dev, t, "/pricing", "Pricing")
        self._product_viewed(p, dev, t + 3000, p.plan)
        t += int(r.uni(20, 200) * 1000)
        product = {
            "product_id": f"prd_{p.plan}_{p.billing}",
            "name": f"{p.plan.title()} plan",
            "price": P.PLANS[p.plan],
            "quantity": p.seats,
        }
        if r.u() < 0.3:
            self.track(
                p,
                dev,
                t,
                "Product Added",
                {"product_id": product["product_id"], "price": P.PLANS[p.plan], "quantity": p.seats, "currency": cur},
            )
            self.track(p, dev, t + 5000, "Cart Viewed", {"products": [product]})
            t += 20_000
        oid = self._new_id(p, "ord")
        self.track(
            p, dev, t, "Checkout Started", {"order_id": oid, "value": p.price, "currency": cur, "products": [product]}
        )
        coupon = None
        if r.u() < 0.1:
            coupon = r.ch(("WELCOME10", "STARTUP20"))
            self.track(
                p,
                dev,
                t + 8000,
                "Coupon Applied",
                {"order_id": oid, "coupon": coupon, "discount": round(p.price * 0.1, 2)},
            )
            p.price = round(p.price * 0.9, 2)
        t += int(r.uni(30, 150) * 1000)
        method = r.wch(("card", "invoice", "paypal"), _PAY_CUM)
        self.track(p, dev, t, "Payment Info Entered", {"order_id": oid, "payment_method": method})
        if r.u() < P.PAYMENT_FAIL:
            t += 4000
            self.track(
                p,
                None,
                t,
                "Payment Failed",
                {
                    "order_id": oid,
                    "reason": r.ch(("card_declined", "insufficient_funds", "expired_card", "fraud_suspected")),
                },
            )
            t += int(r.uni(60, 600) * 1000)
            self.track(p, dev, t, "Payment Info Entered", {"order_id": oid, "payment_method": "card"})
        props = {
            "order_id": oid,
            "revenue": p.price,
            "currency": cur,
            "plan": p.plan,
            "products": [product],
            "billing_period": p.billing,
            "seats": p.seats,
        }
        if coupon:
            props["coupon"] = coupon
        self.track(p, None, t + 3000, "Order Completed", props)
        p.order_ms = t + 3000
        self.rate[p.idx] *= P.PAID_ACTIVITY
        if p.billing == "monthly":
            self._schedule(t + 30 * DAY, "renew", p)

    def _a_renew(self, p: Person, t: int, _extra) -> None:
        r = self.r
        cur = P.CURRENCY[p.region]
        group = p.channel if p.kind != "base" else "existing"
        due = self.renewals.setdefault(group, [0, 0])
        due[0] += 1
        if r.u() < P.CHURN_PER_RENEWAL[group]:
            due[1] += 1
            self.track(
                p,
                None,
                t,
                "Subscription Cancelled",
                {
                    "plan": p.plan,
                    "reason": r.ch(("too_expensive", "missing_feature", "switched_tool", "team_disbanded", "other")),
                },
            )
            p.paying, p.churned = False, True
            self.rate[p.idx] *= P.CHURNED_ACTIVITY
            return
        self.track(
            p,
            None,
            t,
            "Subscription Renewed",
            {"revenue": p.price, "currency": cur, "plan": p.plan, "billing_period": "monthly"},
        )
        self._schedule(t + 30 * DAY, "renew", p)

    # -- the matching study ----------------------------------------------------------------------
    def _slack_study(self) -> None:
        """At the Slack launch, free accounts choose to connect from pre-period activity and size."""
        r = self.r
        a, b1, b2 = P.SLACK_LOGIT
        c0, c1, c2 = P.UPGRADE_P
        start = self.slack_ms
        for p in self.persons:
            if (
                p.user_id is None
                or p.ever_paid
                or (p.signup_ms is not None and p.signup_ms >= start)
                or (p.buy_ms is not None and p.buy_ms < start)
            ):
                continue
            p.study = True
            x = math.log1p(p.pre_events)
            p.slack = r.u() < 1.0 / (1.0 + math.exp(-(a + b1 * x + b2 * (p.size_rank - 3))))
            p.p0 = min(0.95, max(0.0, c0 + c1 * x + c2 * (p.size_rank - 1)))
            u = r.u()
            a_ms = start + int(r.uni(1, P.UPGRADE_SPREAD_DAYS) * DAY)
            if p.slack:
                connect = start + int(r.uni(0.05, P.SLACK_CONNECT_DAYS) * DAY)
                self._schedule(connect, "slack", p)
                a_ms = max(a_ms, connect + DAY + int(r.uni(0, 3) * DAY))
            p.a_up = u < p.p0 + (P.SLACK_EFFECT if p.slack else 0.0)
            # potential outcomes with common random numbers: the sample ATT is exact, not just expected
            p.a_ms = a_ms
            y1 = (u < p.p0 + P.SLACK_EFFECT) and a_ms < self.t_end
            y0 = (u < p.p0) and a_ms < self.t_end
            self.truth_study[p.idx] = (p.slack, y0, y1)
            if p.a_up:
                self._schedule(a_ms, "buy", p)

    def _a_slack(self, p: Person, t: int, _extra) -> None:
        dev = p.devices[0]
        if dev.user is None:
            t = self._login(p, dev, t)
        self.page(p, dev, t, "/app/settings/integrations", "Integrations")
        self.track(p, dev, t + 12_000, "Integration Connected", {"integration": "slack", "workspace_id": p.ws})


def _gauss(r: Stream) -> float:
    return math.sqrt(-2.0 * math.log(1.0 - r.u())) * math.cos(2.0 * math.pi * r.u())


def _iso(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, tz=UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{ms % 1000:03d}Z"


_HOURLY_CUM = cumulative(P.HOURLY)
_METHOD_CUM = cumulative((0.5, 0.3, 0.12, 0.08))
_NONACT_CUM = cumulative((0.45, 0.33, 0.22))
_MENTION_CUM = cumulative((0.7, 0.2, 0.1))
_INVITE_N_CUM = cumulative((0.6, 0.3, 0.1))
_ROLE_CUM = cumulative((0.75, 0.15, 0.10))
_PAY_CUM = cumulative((0.8, 0.12, 0.08))
