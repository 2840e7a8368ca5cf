"""How people and carrier systems write about fulfilment exceptions: description templates per
type (explicit, implied, ambiguous), notes, and the parts of customer, agent and carrier
messages, plus the noise people add (typos, lower case, abbreviations).

Templates are ``str.format`` strings over the slots of ``generator.Slots``. An *implied*
template never names its type (see TYPE_KEYWORDS); an *ambiguous* one could reasonably be read
as its ``confusable`` type, and the order's data is what tells them apart.
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass

CARRIER_FEED = "carrier_feed"
WAREHOUSE = "warehouse"
AGENT = "agent"
PORTAL = "customer_portal"

_SLOT = re.compile(r"(\{[a-z_0-9]+\})")


@dataclass(frozen=True)
class Phrase:
    text: str
    voice: str
    confusable: str | None = None
    flavor: str | None = (
        None  # customs_hold: "documents" | "duties"; stock_out: "known" | "unknown"
    )


def _p(
    voice: str, *texts: str, confusable: str | None = None, flavor: str | None = None
) -> list[Phrase]:
    return [Phrase(text, voice, confusable, flavor) for text in texts]


# Words that name a type outright (whole words, so "Stockholm" names nothing): implied and
# ambiguous descriptions contain none of their own type's in their literal text.
TYPE_KEYWORDS: dict[str, re.Pattern[str]] = {
    name: re.compile(r"\b(?:" + words + r")\b", re.IGNORECASE)
    for name, words in (
        ("carrier_delay", r"delay\w*|late|overdue|retard\w*|verzög\w*|vertraag\w*"),
        ("address_invalid", r"address\w*|adress\w*|addr|adresse|anschrift|adres"),
        ("damaged_item", r"damag\w*|broken|dmg|smashed|endommag\w*|beschädigt|beschadigd"),
        ("stock_out", r"stock|stock-out|stockout|oos|inventory|back-?order\w*"),
        ("customs_hold", r"customs|douane|zoll\w*|clearance"),
    )
}


def names_type(text: str, exception_type: str) -> bool:
    """Whether the text (slots left out) names the type outright."""
    return TYPE_KEYWORDS[exception_type].search(_SLOT.sub(" ", text)) is not None


EXPLICIT: dict[str, list[Phrase]] = {
    "carrier_delay": [
        *_p(
            CARRIER_FEED,
            "Carrier delay: {carrier} reports shipment {tracking} delayed in transit, new ETA "
            "{eta}.",
            "{carrier} delay notice - consignment {tracking} missed the linehaul at {hub}. "
            "Revised delivery {eta}.",
            "SHIPMENT DELAYED - {tracking} - DELAY IN TRANSIT NETWORK - NEW DELIVERY DATE {eta}",
            "Delayed: {tracking} held up at {hub} due to network congestion.",
            "Late delivery expected for {tracking} ({carrier}). Reason: capacity constraints.",
        ),
        *_p(
            AGENT,
            "Order {order} is running {days} days late with {carrier}; promised {promised}, "
            "still in transit.",
            "Late delivery: {order} was due {promised} ({service}), tracking shows no movement "
            "for {days} days.",
            "Delivery delayed for {order}. {carrier} blames weather disruption at {hub}.",
            "SLA breach on {order}: {service} shipment via {carrier} past promised date by "
            "{days} days.",
            "{carrier} running late on {order}",
            "Shipment delay - {order}",
            "cust chasing {order}, {days}d late w/ {carrier}",
        ),
        *_p(
            PORTAL,
            "My order {order} is late. It was supposed to arrive on {promised} and it's still "
            "not here.",
            "where is my parcel?? order {order} is {days} days late",
            "Delivery is overdue. Tracking {tracking} says in transit since last week.",
            "Late.",
        ),
        *_p(
            WAREHOUSE,
            "Carrier collected late for {order}; {carrier} trailer missed the cut-off, parcel "
            "delayed by {days} day(s).",
            "Late pickup by {carrier} at {warehouse}, {order} will miss its {service} SLA.",
        ),
    ],
    "address_invalid": [
        *_p(
            CARRIER_FEED,
            "Address invalid: consignee address for {tracking} could not be found. Please "
            "provide a correct address.",
            "UNDELIVERABLE - INCOMPLETE ADDRESS - HOUSE NUMBER MISSING - {tracking}",
            "{carrier}: delivery failed for {tracking}, address incomplete or incorrect.",
            "Address not found by driver ({tracking}). Parcel held at {hub} for 5 days.",
        ),
        *_p(
            AGENT,
            "Invalid shipping address on {order}: {address}. Postcode does not match the city.",
            "Address problem on {order} - customer entered '{address}', carrier says it doesn't "
            "exist.",
            "Wrong address on {order}, needs correcting before reshipment.",
            "bad addr on {order}",
            "Customer gave an incomplete address for {order} (no house number).",
        ),
        *_p(
            WAREHOUSE,
            "Label generation failed for {order}: address validation error (postcode {postcode}).",
            "Address check failed for {order} - {dest_city} postcode invalid, label not printed.",
        ),
        *_p(
            PORTAL,
            "I made a mistake in my address for order {order}, the correct one is "
            "{correct_address}.",
            "Wrong address!! please change the delivery address of {order}",
        ),
    ],
    "damaged_item": [
        *_p(
            PORTAL,
            "The {item} arrived broken. Box was crushed on one side.",
            "received my order today but the {item} is smashed",
            "Item damaged on arrival - {item}, order {order}.",
            "The {item} I received is damaged, there's a crack right across it.",
        ),
        *_p(
            AGENT,
            "Damaged item: customer received the {item} cracked, photos attached to ticket "
            "{ticket}.",
            "{qty}x {item} arrived damaged (dented and scratched) on {order}.",
            "Damage claim needed for {order}: {item} broken in transit.",
            "dmg on arrival, {order}",
            "Item damaged",
        ),
        *_p(
            CARRIER_FEED,
            "DAMAGED IN TRANSIT - {tracking} - PACKAGING COMPROMISED",
            "{carrier}: parcel {tracking} damaged at {hub}, delivered with damage note.",
        ),
        *_p(
            WAREHOUSE,
            "Return inspected: {item} from {order} damaged, not resellable.",
            "Damaged goods reported on {order}, {item} written off.",
        ),
    ],
    "stock_out": [
        *_p(
            WAREHOUSE,
            "Stock-out: SKU {sku} ({item}) unavailable at {warehouse}, order {order} cannot "
            "be picked.",
            "Out of stock: {sku} shows 0 available, {qty} needed for {order}.",
            "OOS {sku} @ {warehouse}",
            "Inventory shortfall: {stock_qty} on hand vs {qty} ordered for {sku}.",
            "no stock {sku} for {order}",
        ),
        *_p(
            AGENT,
            "Item out of stock for {order}; {item} backordered.",
            "Stock-out on {item} ({sku}) - {order} on hold.",
            "Out of stock",
        ),
        *_p(
            PORTAL,
            "Your website said the {item} was in stock but I got an email saying it's not "
            "available??",
            "Why is my {item} out of stock after I paid for it?",
        ),
    ],
    "customs_hold": [
        *_p(
            CARRIER_FEED,
            "Customs hold: {tracking} held at {hub} awaiting commercial invoice.",
            "Held at customs in {dest_country}: documents missing for {tracking}.",
            flavor="documents",
        ),
        *_p(
            CARRIER_FEED,
            "SHIPMENT HELD BY CUSTOMS - {tracking} - DUTIES AND TAXES UNPAID",
            "Customs: import duties of {duties} to be paid by the receiver before release "
            "({tracking}).",
            flavor="duties",
        ),
        *_p(
            AGENT,
            "Order {order} stuck in customs in {dest_country}, broker requests the EORI number.",
            "Customs hold on {order}: commercial invoice and HS codes missing.",
            flavor="documents",
        ),
        *_p(
            AGENT,
            "Customs clearance pending for {order}: import VAT of {duties} due before release.",
            "customs hold {order} - duties unpaid",
            flavor="duties",
        ),
        *_p(
            AGENT,
            "Customs hold on {order} ({dest_country}).",
            "Held in customs",
        ),
        *_p(
            PORTAL,
            "Customs is holding my parcel and asking me for documents, what do I do?",
            flavor="documents",
        ),
        *_p(
            PORTAL,
            "Customs wants me to pay {duties} before they release my order {order}??",
            flavor="duties",
        ),
    ],
}

IMPLIED: dict[str, list[Phrase]] = {
    "carrier_delay": [
        *_p(
            PORTAL,
            "Tracking for {tracking} hasn't changed since {weekday} and I need this before the "
            "weekend.",
            "It's been two weeks since I ordered and still nothing. Tracking just says 'in "
            "transit'.",
            "Still waiting for {order}. You promised {promised}.",
        ),
        *_p(
            AGENT,
            "Customer says the parcel has been sitting at {hub} for {days} days with no scan.",
            "Promised {promised}, today is day {days} past that and the customer is still "
            "waiting for {order}.",
            "Customer needs the {item} for an event on {weekday}, tracking {tracking} stuck on "
            "'processed at {hub}'.",
            "{order}: ETA keeps moving, {carrier} now says {eta}.",
        ),
        *_p(
            CARRIER_FEED,
            "No movement scan for {tracking} in {hours}h. Last event: arrived at {hub}.",
            "Exception scan: missed connection at {hub}. Consignment will move on next "
            "available departure.",
            "Rescheduled: consignment {tracking} will be delivered on the next working day.",
        ),
        *_p(
            WAREHOUSE,
            "Handed over to {carrier} on time; {order} still shows 'in transit' {days} days "
            "after the promised date.",
        ),
    ],
    "address_invalid": [
        *_p(
            CARRIER_FEED,
            "Driver could not locate the building; no number {number} on {street}.",
            "Recipient not known at this location. Please supply complete delivery details.",
            "Consignee moved, no forwarding details. Parcel {tracking} returning to sender.",
        ),
        *_p(
            AGENT,
            "Customer moved last month and the order went to the old flat.",
            "Postcode {postcode} doesn't exist for {dest_city} according to {carrier}; "
            "customer to confirm.",
            "The building number on {order} looks wrong, driver found an empty lot.",
        ),
        *_p(
            WAREHOUSE,
            "Postcode {postcode} is not valid for {dest_city}, carrier rejected the label for "
            "{order}.",
        ),
        *_p(
            PORTAL,
            "I think I typed my flat number wrong, it should be {unit} not {unit2}.",
            "The driver says my street doesn't exist?? I've lived here 10 years",
        ),
    ],
    "damaged_item": [
        *_p(
            PORTAL,
            "Opened the box and the {item} is in three pieces, glass everywhere.",
            "The {item} doesn't turn on and there's a big dent in the side, the box was soaked.",
            "The {item} arrived with a huge crack and a bent corner.",
            "Contents leaked all over the box, the {item} is ruined.",
        ),
        *_p(
            AGENT,
            "Customer sent photos: the {item} has a deep crack across the front.",
            "Leaking bottle in parcel {tracking}, contents ruined.",
            "Customer reports the {item} came crushed, outer carton torn.",
        ),
        *_p(
            WAREHOUSE,
            "Return for {order} came back wet and torn; the {item} is unusable.",
        ),
        *_p(
            CARRIER_FEED,
            "Parcel {tracking} rewrapped at {hub}: outer packaging torn, contents exposed.",
        ),
    ],
    "stock_out": [
        *_p(
            WAREHOUSE,
            "Picker found bin {bin} empty for {sku}, system says {stock_qty} units.",
            "Can't pick {order}: the last {item} was sold through the marketplace an hour ago.",
            "Cycle count found {sku} short by {qty}; {order} waiting for replenishment.",
            "{sku}: 0 available to pick at {warehouse}, {order} parked.",
        ),
        *_p(
            AGENT,
            "Supplier hasn't delivered the {item} yet, {order} waiting in the pick queue.",
            "The {item} for {order} isn't on the shelf; purchasing is chasing the supplier.",
        ),
        *_p(
            PORTAL,
            "I ordered the {item} {days} days ago and it still says 'preparing', is it actually "
            "available?",
        ),
    ],
    "customs_hold": [
        *_p(
            CARRIER_FEED,
            "Parcel waiting at the {dest_country} border, commercial invoice and HS codes "
            "requested.",
            "Awaiting import documentation at {hub}; goods description on the CN23 too vague.",
            flavor="documents",
        ),
        *_p(
            AGENT,
            "Recipient has to pay {duties} import VAT before {carrier} will release the parcel.",
            flavor="duties",
        ),
        *_p(
            AGENT,
            "Broker needs the EORI and a signed invoice for {order} shipped to {dest_country}.",
            flavor="documents",
        ),
        *_p(
            PORTAL,
            "I got a letter saying I must pay {duties} in fees before they deliver, I already "
            "paid for shipping!",
            flavor="duties",
        ),
        *_p(
            PORTAL,
            "Some agency at the border wants an invoice for my parcel, can you send it?",
            flavor="documents",
        ),
    ],
}

AMBIGUOUS: dict[str, list[Phrase]] = {
    "carrier_delay": [
        *_p(
            AGENT,
            "Parcel stuck at {hub} for {days} days, no update from {carrier}.",
            "Shipment on hold at {hub}.",
            confusable="customs_hold",
        ),
        *_p(
            CARRIER_FEED,
            "Delivery attempt failed, parcel back at the depot.",
            confusable="address_invalid",
        ),
        *_p(
            AGENT,
            "Order {order} still hasn't reached the customer and they are chasing.",
            confusable="stock_out",
        ),
        *_p(
            PORTAL,
            "Parcel finally turned up today, box a bit dented but the contents seem fine. Not "
            "happy.",
            confusable="damaged_item",
        ),
    ],
    "address_invalid": [
        *_p(
            CARRIER_FEED,
            "Delivery failed - parcel returned to sender.",
            "Delivery attempt unsuccessful, parcel held at {hub}.",
            confusable="carrier_delay",
        ),
        *_p(
            AGENT,
            "Shipment on hold pending customer confirmation.",
            confusable="customs_hold",
        ),
        *_p(
            PORTAL,
            "Tracking says delivered but I never got {order}.",
            confusable="carrier_delay",
        ),
    ],
    "damaged_item": [
        *_p(
            PORTAL,
            "Item missing from the box, the packaging was torn open.",
            confusable="stock_out",
        ),
        *_p(
            WAREHOUSE,
            "Parcel for {order} came back to us badly dented, contents rattling.",
            confusable="address_invalid",
        ),
        *_p(
            AGENT,
            "Customer received the wrong-looking {item}, not usable as delivered.",
            confusable="stock_out",
        ),
    ],
    "stock_out": [
        *_p(
            AGENT,
            "Order {order} hasn't left the warehouse yet.",
            "{order} won't ship until next week.",
            confusable="carrier_delay",
        ),
        *_p(
            PORTAL,
            "Only part of my order arrived, the {item} is missing.",
            confusable="damaged_item",
        ),
    ],
    "customs_hold": [
        *_p(
            AGENT,
            "Parcel stuck at {hub} for {days} days, waiting on paperwork.",
            "Shipment on hold at {hub}, awaiting documents.",
            confusable="carrier_delay",
            flavor="documents",
        ),
        *_p(
            PORTAL,
            "Tracking has said 'arrived in {dest_country}' for a week, nothing since.",
            confusable="carrier_delay",
        ),
        *_p(
            CARRIER_FEED,
            "Shipment on hold - action required by receiver.",
            confusable="address_invalid",
        ),
    ],
}

# Carrier tracking events in the carrier's own language.
LOCAL_FEED: dict[tuple[str, str], tuple[str, ...]] = {
    ("carrier_delay", "fr"): (
        "Colis {tracking} retardé : acheminement perturbé, nouvelle date de livraison prévue "
        "le {eta}.",
        "Votre colis a du retard. Nous mettons tout en œuvre pour le livrer au plus vite.",
    ),
    ("carrier_delay", "de"): (
        "Sendung {tracking} verzögert sich. Voraussichtliche Zustellung: {eta}.",
        "Die Sendung konnte heute nicht zugestellt werden (Verzögerung im Netz).",
    ),
    ("carrier_delay", "nl"): (
        "Zending {tracking} is vertraagd. Nieuwe verwachte bezorgdatum: {eta}.",
    ),
    ("address_invalid", "fr"): (
        "Adresse incomplète pour le colis {tracking} : destinataire inconnu à l'adresse indiquée.",
    ),
    ("address_invalid", "de"): (
        "Empfänger unter der angegebenen Anschrift nicht zu ermitteln ({tracking}).",
    ),
    ("address_invalid", "nl"): ("Adres onvolledig voor {tracking}: huisnummer ontbreekt.",),
    ("damaged_item", "fr"): ("Colis {tracking} endommagé lors du transport.",),
    ("damaged_item", "de"): ("Sendung {tracking} beschädigt zugestellt.",),
    ("damaged_item", "nl"): ("Pakket {tracking} beschadigd aangekomen.",),
    ("customs_hold", "fr"): ("Colis {tracking} retenu en douane : facture commerciale manquante.",),
    ("customs_hold", "de"): (
        "Sendung {tracking} befindet sich in der Zollabfertigung. Unterlagen fehlen.",
    ),
    ("customs_hold", "nl"): ("Zending {tracking} wordt tegengehouden door de douane.",),
}

PREFIXES: dict[str, tuple[str, ...]] = {
    AGENT: ("URGENT: ", "Re: ", "[{order}] ", "FYI - ", "Ticket {ticket}: ", "Escalation: "),
    WAREHOUSE: ("[{warehouse}] ", "WMS alert: ", "Ops note - "),
    PORTAL: ("Re: Order {order} - ", "Complaint: ", ""),
    CARRIER_FEED: ("[{carrier}] ", "EVENT {tracking}: ", ""),
}

# Notes appended to a description: any type.
NOTES = (
    "Customer is upset.",
    "Second contact about this.",
    "VIP customer, please prioritise.",
    "Pls advise.",
    "Escalating to team lead.",
    "See ticket {ticket}.",
    "cc {agent}",
    "Order value {amount}.",
    "Service level: {service}.",
    "Customer threatens a chargeback.",
    "Already chased once on {weekday}.",
)

# Notes that carry personal data: (text, the PII kinds it plants).
PII_NOTES: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("Contact: {email}", ("email",)),
    ("Customer prefers phone: {phone}", ("phone",)),
    ("Tried calling {phone}, no answer.", ("phone",)),
    ("Ship-to: {address}", ("address",)),
    ("Reply to {email} or call {phone}.", ("email", "phone")),
    ("Customer: {full_name} <{email}>", ("email",)),
    ("Delivery details on file: {address}, tel. {phone}", ("address", "phone")),
)

# What a carrier feed appends (no human remarks): (text, kinds).
CARRIER_NOTES: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("Consignee tel. {phone}", ("phone",)),
    ("Consignee: {full_name}, {address}", ("address",)),
    ("Ref {order}.", ()),
    ("Next attempt: {eta}.", ()),
)

TYPE_NOTES: dict[str, tuple[str, ...]] = {
    "carrier_delay": (
        "Needed for an event on {weekday}.",
        "Tracking: {tracking}.",
        "Promised {promised}.",
        "{carrier} ETA now {eta}.",
    ),
    "address_invalid": ("Neighbours could not help the driver.", "Label reprint needed."),
    "damaged_item": ("Photos in ticket {ticket}.", "Outer box looked fine.", "Fragile item."),
    "stock_out": ("Customer ordered {qty}.", "Other items of the order are ready."),
    "customs_hold": ("Ships from {warehouse}.", "Destination: {dest_country}."),
}

# Notes that decide the recommended action (see playbook.recommended_action). stock_out:
# restock "known" (within three weeks), "far" (a later date) or "none" (no date at all).
FLAVOR_NOTES: dict[tuple[str, str], tuple[str, ...]] = {
    ("stock_out", "known"): (
        "Supplier confirms new units on {restock}.",
        "Back in {restock_days} days per purchasing.",
        "Restock ETA {restock}.",
    ),
    ("stock_out", "far"): (
        "Next supplier delivery not before {restock}.",
        "Purchasing says {restock_days} days at the earliest.",
    ),
    ("stock_out", "none"): (
        "Supplier has discontinued this item.",
        "No restock date from the supplier.",
    ),
    ("customs_hold", "documents"): (
        "Commercial invoice missing.",
        "EORI number requested.",
        "Broker asks for the HS codes and a signed invoice.",
    ),
    ("customs_hold", "duties"): (
        "Import VAT of {duties} unpaid.",
        "Receiver refused to pay the duties ({duties}).",
        "Duties of {duties} outstanding.",
    ),
}

# --- messages ----------------------------------------------------------------------------------

CUSTOMER_OPEN = (
    "Hi,",
    "Hello,",
    "Hi there,",
    "Good morning,",
    "Bonjour,",
    "Hallo,",
    "Hey",
    "Dear support team,",
    "",
)

CUSTOMER_BODY: dict[str, tuple[str, ...]] = {
    "carrier_delay": (
        "My order {order} was supposed to arrive on {promised} and it's still not here.",
        "Tracking {tracking} hasn't moved in days.",
        "I paid for {service} shipping and it's now {days} days late.",
        "Can you tell me where my parcel is? It's been ages.",
        "The {carrier} website just says 'in transit'. What is going on?",
    ),
    "address_invalid": (
        "I noticed the delivery address on {order} is wrong. Please send it to "
        "{correct_address} instead.",
        "The courier says they can't find my address. It's {correct_address}.",
        "I moved recently, my new address is {correct_address}.",
        "{carrier} left a note saying my address is incomplete?",
    ),
    "damaged_item": (
        "The {item} arrived broken.",
        "The box was crushed and the {item} is cracked, I've attached photos.",
        "Half of the order arrived dented and the {item} doesn't work.",
        "Everything was soaked when it arrived.",
    ),
    "stock_out": (
        "I got an email that the {item} isn't available, when will it ship?",
        "You took my money but now say the item is out of stock?",
        "Is the {item} coming or not? The order still says 'processing'.",
    ),
    "customs_hold": ("The parcel is stuck at the border and nobody answers at {carrier}.",),
}

# What customers and carriers say that tells why a customs hold happened (see FLAVOR_NOTES).
CUSTOMER_FLAVOR: dict[tuple[str, str], tuple[str, ...]] = {
    ("customs_hold", "documents"): (
        "Customs wants a commercial invoice for my order, can you send it?",
        "They're asking for my tax ID, it's {national_id}. Can you pass it on?",
    ),
    ("customs_hold", "duties"): (
        "I received a notice that I need to pay {duties} in import fees.",
        "Why do I have to pay {duties} to get my own parcel?",
    ),
}

CUSTOMER_ASK = (
    "Please refund me.",
    "Can you send a replacement?",
    "I need this by {weekday}.",
    "Please call me on {phone}.",
    "You can reach me at {phone} or {email}.",
    "Refund to my IBAN {iban} please, not the card.",
    "I paid with card {card}.",
    "The charge on my card {card} went through twice as well.",
    "My bank details for the refund: {iban}",
    "Please sort this out.",
    "This is the third time I'm writing!!",
    "",
)

CUSTOMER_CLOSE = (
    "Thanks,\n{name}",
    "Regards, {full_name}",
    "{full_name}\n{phone}",
    "Sent from my iPhone",
    "Best,\n{name}\n{email}",
    "--\n{full_name}\n{address}\n{phone}",
    "Cheers",
    "",
)

AGENT_OPEN = ("Hi {name},", "Hello {name},", "Dear {full_name},", "Hi,", "Internal note:")

AGENT_BODY: dict[str, tuple[str, ...]] = {
    "carrier_delay": (
        "I'm sorry your order is taking longer than expected.",
        "{carrier} says the parcel is moving again, new estimate {eta}.",
        "Tracking {tracking} shows it at {hub}.",
    ),
    "address_invalid": (
        "The carrier couldn't deliver to {address}.",
        "Called customer on {phone}, confirmed new address {correct_address}.",
        "Thanks, I've updated the address and asked {carrier} to redeliver.",
    ),
    "damaged_item": (
        "I'm sorry the {item} arrived in that state.",
        "Could you send us a photo of the item and of the box?",
        "Customer sent photos, damage confirmed.",
    ),
    "stock_out": (
        "Unfortunately the {item} is not available at the moment.",
        "We're sorry, the {item} sold out faster than expected.",
    ),
    "customs_hold": (
        "I've contacted {carrier}'s brokerage team about your parcel.",
        "Your parcel is waiting at the border in {dest_country}.",
    ),
}

# What the agent says when it decides the action (the same facts as FLAVOR_NOTES).
AGENT_FLAVOR: dict[tuple[str, str], tuple[str, ...]] = {
    ("stock_out", "known"): (
        "Our supplier confirms new units on {restock}; we can ship then or refund you now.",
        "It should be back in about {restock_days} days.",
    ),
    ("stock_out", "far"): ("Our supplier can't deliver new units before {restock}.",),
    ("stock_out", "none"): (
        "The {item} has been discontinued, so we can offer you a full refund.",
        "Our supplier can't give us a date for new units.",
    ),
    ("customs_hold", "documents"): (
        "We've sent the commercial invoice to {carrier}.",
        "Could you send us your tax ID so the broker can clear the parcel?",
    ),
    ("customs_hold", "duties"): (
        "Import VAT of {duties} is due before release; we'll cover it this time.",
        "There are {duties} in duties to pay before the parcel is released.",
    ),
}

# The agent telling the customer what happens next: one line per playbook action.
AGENT_ACTION: dict[str, tuple[str, ...]] = {
    "contact_carrier": (
        "I've opened a trace with {carrier} and will update you as soon as I hear back.",
    ),
    "reship_order": (
        "As the parcel is now well past the promised date we'll ship a new one today.",
    ),
    "request_address_confirmation": (
        "Could you confirm your full delivery address, including the house number and postcode?",
    ),
    "issue_replacement": ("A replacement is on its way.",),
    "file_carrier_claim": (
        "We've opened a claim with {carrier} (ref {claim}) given the value of the order.",
    ),
    "offer_backorder": ("We can ship it as soon as it's back, or refund you now if you prefer.",),
    "offer_refund": ("We'll refund you in full for the {item}.",),
    "provide_customs_documents": ("We've sent the commercial invoice and our EORI to the broker.",),
    "pay_import_duties": ("We'll pay the import charges so the parcel can be released.",),
}

AGENT_CLOSE = (
    "Kind regards,\n{agent}\n{company} Customer Care",
    "Best,\n{agent}",
    "Thanks for your patience,\n{agent} | {company}\n{support_phone}",
    "{agent}",
    "",
)

# Pasted by mistake into an agent's message: (text, kinds).
AGENT_SLIPS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("(for dev team: webhook is failing, header was Authorization: {token})", ("token",)),
    ("PS the tracking API key I used is {token} - ignore", ("token",)),
    ("debug: request from {ip} rejected, key {token}", ("ip", "token")),
    ("Customer's card on file: {card}", ("card",)),
    ("Customer's refund IBAN: {iban}", ("iban",)),
)

CARRIER_BODY: dict[str, tuple[str, ...]] = {
    "carrier_delay": (
        "{carrier} update for {tracking}: delayed, arrived late at {hub}. New ETA {eta}.",
        "Shipment {tracking} is delayed due to high volumes. We apologise for the inconvenience.",
        "Consignment {tracking} missed its connection at {hub}.",
    ),
    "address_invalid": (
        "{carrier}: delivery attempt failed for {tracking} - address incomplete. Please "
        "provide a full address within 5 days.",
        "Consignee not known at {address}. Parcel held at depot.",
    ),
    "damaged_item": (
        "{carrier}: parcel {tracking} was damaged in our network. Claim reference {claim}.",
        "Damage report for {tracking}: outer carton crushed.",
    ),
    "stock_out": (
        "{carrier}: collection for {order} cancelled by shipper, shipment not ready.",
        "Pickup request for {order} rescheduled, goods not available at {warehouse}.",
    ),
    "customs_hold": ("{tracking}: shipment held at {hub}, action required.",),
}

CARRIER_FLAVOR: dict[tuple[str, str], tuple[str, ...]] = {
    ("customs_hold", "documents"): (
        "{carrier} customs brokerage: shipment {tracking} held, commercial invoice required.",
        "{tracking}: clearance delay at {hub}, documents requested from shipper.",
    ),
    ("customs_hold", "duties"): (
        "Duties and taxes of {duties} payable by receiver for {tracking}.",
    ),
}

CARRIER_EXTRA: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("Questions? Call the depot on {depot_phone}.", ("phone",)),
    ("Depot: {depot_address}", ("address",)),
    ("Webhook delivery from {ip} rejected (signature mismatch).", ("ip",)),
    ("Reference: {tracking}", ()),
    ("", ()),
    ("", ()),
)

WEEKDAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
AGENTS = ("Sam", "Priya", "Jonas", "Chloé", "Marta", "Ahmed", "Lotte", "Ben", "Yuki", "Elena")

# --- noise -------------------------------------------------------------------------------------

_NEIGHBOURS = {
    "a": "sq",
    "e": "wr",
    "i": "uo",
    "o": "ip",
    "u": "yi",
    "s": "ad",
    "t": "ry",
    "n": "bm",
    "r": "et",
    "l": "k",
    "d": "sf",
    "c": "xv",
    "m": "n",
    "h": "gj",
    "p": "o",
    "g": "fh",
    "y": "tu",
    "k": "jl",
}


def _misspell(word: str, rng: random.Random) -> str:
    position = 1 + int(rng.random() * (len(word) - 2))
    kind = int(rng.random() * 4)
    if kind == 0:  # swap two neighbouring letters
        return word[:position] + word[position + 1] + word[position] + word[position + 2 :]
    if kind == 1:  # drop one
        return word[:position] + word[position + 1 :]
    if kind == 2:  # double one
        return word[:position] + word[position] + word[position:]
    near = _NEIGHBOURS.get(word[position].lower())
    if not near:
        return word[:position] + word[position + 1 :]
    return word[:position] + near[int(rng.random() * len(near))] + word[position + 1 :]


def with_typos(template: str, count: int, rng: random.Random) -> str:
    """Misspell up to ``count`` words of a template's literal text; slots stay intact."""
    words = template.split(" ")
    candidates = [
        index
        for index, word in enumerate(words)
        if len(word) >= 4 and word[:4].isalpha() and "{" not in word
    ]
    if not candidates:
        return template
    for _ in range(count):
        index = candidates[int(rng.random() * len(candidates))]
        word = words[index]
        end = 0  # the word's letters, without trailing punctuation
        while end < len(word) and word[end].isalpha():
            end += 1
        if end >= 4:  # (a word picked twice may have lost a letter already)
            words[index] = _misspell(word[:end], rng) + word[end:]
    return " ".join(words)
