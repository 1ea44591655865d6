// The real, unmodified browser trackers, bundled for the test page (`make npm` builds dist/trackers.js).
import { AnalyticsBrowser } from "@segment/analytics-next";
import * as snowplow from "@snowplow/browser-tracker";

window.trackers = { AnalyticsBrowser, snowplow };
