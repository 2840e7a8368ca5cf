"""A small labelled retrieval set: support articles and tickets of one product, and queries
with the records that answer them.

Two kinds of query, as users of a support search ask them: descriptions of a problem in their
own words (``meaning``), which rarely repeat the records' words, and look-ups of an identifier
or a product term (``words``: error codes, order numbers, SKUs), which a sentence embedding
represents poorly. The relevant records were chosen by reading them, before any search ran.
"""

from __future__ import annotations

from dataclasses import dataclass

DOCS: dict[int, str] = {
    # sign-in
    1: "Sign-in fails with 'invalid credentials' right after the password was changed on "
    "another device; clearing the saved password in the browser fixes it.",
    2: "After too many wrong attempts the account is locked for 30 minutes. Admins can "
    "unlock a member from Settings > Members.",
    3: "Two-factor codes are rejected when the phone's clock is off. Turn on automatic time "
    "in the phone settings and try the code again.",
    4: "The password reset email does not arrive: check the spam folder and that the address "
    "is the one on the account; links expire after one hour.",
    5: "Users who signed up with Google cannot log in with a password; use 'Continue with "
    "Google' on the login page.",
    # double charges and refunds
    6: "Customer was billed twice for order ORD-88213; the duplicate card payment was "
    "refunded and takes 5 to 10 business days to appear.",
    7: "A pending authorization looks like a second charge but disappears from the bank "
    "statement within a few days; nothing was taken.",
    8: "Refunds go back to the original payment method. Store credit is offered when the "
    "card has expired.",
    9: "Annual plan renewed by mistake: we refund the renewal in full when asked within 14 "
    "days of the charge.",
    10: "Refund request for ORD-88213 approved by billing; the customer asked for the money "
    "back instead of a replacement.",
    # shipping delays
    11: "Tracking has shown 'label created' for four days: the carrier has not scanned the "
    "parcel yet. Orders ship from the Rotterdam warehouse.",
    12: "Deliveries to the Canary Islands take 10 to 15 days because of customs formalities.",
    13: "Parcel stuck in transit at the Leipzig hub since Monday; the carrier opened an "
    "investigation, reference CX-5521.",
    14: "Express shipping orders placed after 2 pm leave the next working day.",
    15: "Order ORD-90417 is late: the carrier missed the pickup, a new pickup is booked for "
    "tomorrow.",
    # damaged items
    16: "The box arrived crushed and the glass carafe inside was shattered; photos attached "
    "to the ticket.",
    17: "Item broken on arrival: send a photo of the damage and of the packaging, and we ship "
    "a replacement at no cost.",
    18: "Screen of the TX-200 tablet cracked in transit; replacement unit sent with tracking.",
    19: "Dented kettle received; customer keeps it with a 30 percent partial refund.",
    # addresses
    20: "To change the delivery address, edit the order before it is packed; after that the "
    "carrier can redirect it for a fee.",
    21: "Wrong apartment number on order ORD-90417; address corrected before dispatch.",
    22: "Customer moved house: default shipping address updated in the profile, open orders "
    "unchanged.",
    # API rate limits
    23: "API returns HTTP 429 Too Many Requests above 600 requests per minute per token; "
    "back off and retry after the Retry-After header.",
    24: "Bulk imports should use the batch endpoint, which accepts 500 records per call and "
    "counts as one request against the rate limit.",
    25: "Rate limit raised to 2,000 requests per minute for the Enterprise plan of "
    "customer Nordwind.",
    # webhooks
    26: "Webhook deliveries fail with ERR-4012 signature mismatch when the endpoint parses "
    "the body before verifying the HMAC; verify the raw bytes.",
    27: "Webhooks are retried with exponential backoff for 24 hours; after that the event is "
    "marked failed in the developer console.",
    28: "ERR-4012 appears after rotating the webhook secret until the receiving service is "
    "deployed with the new secret.",
    29: "Endpoint must answer within 10 seconds or the delivery counts as timed out and is "
    "retried.",
    # exports
    30: "Export all contacts to CSV from Reports > Export; files above 1 million rows are "
    "split into several parts and emailed as a zip.",
    31: "Excel shows broken accents in exported CSV files: import the file as UTF-8 instead "
    "of opening it directly.",
    32: "Scheduled exports to an S3 bucket need a role that allows PutObject on the bucket prefix.",
    # single sign-on
    33: "SAML login fails with E-1193 'assertion audience invalid' when the entity ID in the "
    "identity provider does not match ours exactly.",
    34: "Okta and Azure AD are supported identity providers for single sign-on; SCIM "
    "provisioning creates and removes members automatically.",
    35: "E-1193 after migrating the identity provider: update the audience URI to the new "
    "workspace domain.",
    36: "Enforcing SSO disables password login for every member except the owner.",
    # mobile app crashes
    37: "The Android app closes immediately on launch after updating to version 5.2; "
    "reinstalling fixes it until a hotfix ships.",
    38: "iOS app freezes on the splash screen when offline mode data is corrupted; deleting "
    "and reinstalling the app clears it.",
    39: "Crash reports from Pixel phones point to the camera permission prompt in version 5.2.",
    # invoices and VAT
    40: "Invoices are available under Billing > Invoices as PDF; the company name and VAT "
    "number can be edited before the next invoice is issued.",
    41: "Reverse charge applies to EU business customers with a valid VAT ID; the invoice "
    "then shows 0 percent VAT.",
    42: "Customer needs a corrected invoice INV-2024-0312 with the new billing address.",
    # data deletion and privacy
    43: "To erase a person's data under GDPR, open their profile and choose 'Delete personal "
    "data'; backups are purged within 30 days.",
    44: "A data subject access request is answered within one month with a machine readable "
    "export of everything we hold about the person.",
    45: "Closing the workspace deletes all records after a 14 day grace period in which it "
    "can be restored.",
    # dashboard performance
    46: "Dashboards with more than 40 widgets load slowly; split them or use the cached "
    "view, which refreshes every 15 minutes.",
    47: "Reports time out for date ranges longer than two years; narrow the range or "
    "schedule the report to run overnight.",
    48: "Slowness on Monday mornings was caused by the weekly aggregation job; it now runs "
    "on Sunday night.",
    # Slack
    49: "Slack notifications stopped after the workspace admin removed the app; reconnect "
    "it from Integrations > Slack.",
    50: "Alerts can be routed to different Slack channels per project with notification rules.",
    51: "Messages to a private Slack channel need the app to be invited to that channel first.",
    # plan changes
    52: "Downgrading from Pro to Team takes effect at the end of the billing period; "
    "features above the new plan are switched off then.",
    53: "Cancel the subscription from Billing > Plan; the account stays usable until the "
    "paid period ends.",
    54: "Customer wants to pause the subscription for the summer instead of cancelling.",
    # onboarding
    55: "The setup wizard stops at step 3 'connect your data' when the database firewall "
    "blocks our IP addresses; allow list them first.",
    56: "New workspaces get a guided tour; it can be restarted from Help > Tour.",
    57: "Onboarding call booked with the customer success team for Acme Logistics.",
    # customs
    58: "Shipments to Switzerland and Norway need a commercial invoice; customs may charge "
    "import duties on delivery.",
    59: "Customs is holding the parcel and asks for the EORI number of the receiver.",
    # product questions
    60: "The TX-200 battery lasts about 9 hours of video playback; fast charging reaches 50 "
    "percent in 30 minutes.",
    61: "TX-200 does not charge with third party USB-C cables that lack power delivery.",
    62: "The KT-15 kettle's limescale filter can be removed and rinsed under the tap.",
    63: "Battery drains overnight on the TX-200 when background sync is on; turn it off in "
    "Settings > Sync.",
    # unrelated noise
    64: "Our support team is available Monday to Friday, 8 am to 6 pm Central European Time.",
    65: "Thank you for the quick help yesterday, everything works now.",
    66: "Holiday opening hours: the warehouse is closed from December 24 to January 1.",
    67: "Feature request: dark mode for the web dashboard.",
    68: "Feature request: export reports directly to Google Sheets.",
    69: "The public status page lists incidents and planned maintenance windows.",
    70: "Partner program: resellers get a 20 percent discount on annual plans.",
    # Records with identifiers of the same shapes as those looked up (real support data has
    # thousands of order numbers): a look-up must find the exact one.
    71: "ORD-88231 was returned unopened; the blender goes back into stock.",
    72: "Gift wrapping added to ORD-88312 at the customer's request.",
    73: "ORD-82813 delivered to the neighbour; the customer confirmed receipt.",
    74: "Invoice for ORD-90471 sent again to the finance team.",
    75: "ORD-94017 split into two parcels because one item ships from the supplier.",
    76: "ORD-90147 cancelled before payment; no action needed.",
    77: "ERR-4021 token expired: API keys older than a year must be regenerated.",
    78: "ERR-4102 means the uploaded file is larger than 25 MB.",
    79: "ERR-1240 appears when a report filter references a deleted field.",
    80: "E-1139 is shown when the SCIM token has been revoked.",
    81: "E-9311 user limit reached for the Team plan; remove members or upgrade.",
    82: "TX-300 keyboard cover pairs over Bluetooth; hold the key for five seconds.",
    83: "TX-100 tablets are no longer supported by the 5.2 app.",
    84: "TX-2000 docking station needs firmware 1.4 for dual monitors.",
    85: "KT-51 toaster: the crumb tray slides out from the back.",
    86: "INV-2024-0321 paid by bank transfer on March 3.",
    87: "INV-2023-0312 was a credit note for a returned item.",
    88: "CX-5512 investigation closed: the parcel was delivered to a pickup point.",
    89: "CX-2155 carrier reference for a return shipment from Lyon.",
    90: "Receiver asked whether the parcel needs a signature on delivery.",
}


@dataclass(frozen=True)
class LabelledQuery:
    text: str
    relevant: frozenset[int]
    kind: str  # "meaning" or "words"


def _q(text: str, relevant: set[int], kind: str) -> LabelledQuery:
    return LabelledQuery(text, frozenset(relevant), kind)


QUERIES: list[LabelledQuery] = [
    # In the user's words: what went wrong, not how the articles phrase it.
    _q("I cannot get into my account anymore", {1, 2, 3, 4, 5}, "meaning"),
    _q("money taken two times from my card", {6, 7, 10}, "meaning"),
    _q("my package has not moved for days", {11, 13, 15}, "meaning"),
    _q("the thing I ordered came smashed", {16, 17, 18, 19}, "meaning"),
    _q("too many calls to your service get refused", {23, 24, 25}, "meaning"),
    _q("phone application shuts down as soon as I open it", {37, 38, 39}, "meaning"),
    _q("remove everything you store about me", {43, 44}, "meaning"),
    _q("charts take forever to appear", {46, 47, 48}, "meaning"),
    _q("stop paying for the service", {52, 53, 54}, "meaning"),
    _q("how long does the tablet run before it needs power", {60, 63}, "meaning"),
    _q("send it to where I live now instead", {20, 21, 22}, "meaning"),
    _q("log in through our company's identity system", {33, 34, 35, 36}, "meaning"),
    # Look-ups of an identifier or a product term.
    _q("ERR-4012", {26, 28}, "words"),
    _q("E-1193", {33, 35}, "words"),
    _q("ORD-88213", {6, 10}, "words"),
    _q("ORD-90417", {15, 21}, "words"),
    _q("TX-200", {18, 60, 61, 63}, "words"),
    _q("INV-2024-0312", {42}, "words"),
    _q("CX-5521", {13}, "words"),
    _q("KT-15 limescale", {62}, "words"),
    _q("EORI", {59}, "words"),
    _q("SCIM Okta", {34}, "words"),
    _q("HMAC", {26}, "words"),
    _q("PutObject S3", {32}, "words"),
]
