"""Writes functional.jsonl: functional test cases per category, each next to its hard negatives.

Written for modfleet (no outside text). Each template is one *functionality* ("threat with a
time and place", "news about violence", "profanity aimed at no one"); its slots are filled from
the lists below with a seeded generator. Whole templates go to the held-out split (a quarter of
them, the second of each functionality), so the test measures cases the model never saw a variant
of. Rebuild with ``python datasets/functional/build.py``; the output is byte-for-byte the same.
"""

from __future__ import annotations

import itertools
import json
import random
import re
from pathlib import Path

CATEGORIES = ("harassment", "hate", "violence", "sexual", "self_harm", "spam")
VARIANTS = 12  # filled-in texts per template, at most

SLOTS = {
    "person": ["@dana", "@markj", "you", "Kevin", "@sarah_k", "@jules99", "Tom", "@the_real_liz",
               "Priya", "@coach_b"],
    "place": ["your house", "the school gates", "your office", "the parking lot", "your gym",
              "the bus stop", "your mum's place", "the mosque", "the synagogue", "the clinic"],
    "time": ["tonight", "on Friday", "tomorrow morning", "after work", "this weekend", "at 6pm",
             "next week", "when you least expect it"],
    "weapon": ["a knife", "my gun", "a bat", "a crowbar", "a hammer", "my shotgun"],
    "hurt": ["stab", "shoot", "beat", "break the legs of", "kill", "strangle", "run over"],
    "group": ["immigrants", "Muslims", "Jews", "gay people", "trans people", "Black people",
              "Mexicans", "women", "disabled people", "Roma", "refugees", "Asians"],
    "member": ["Muslim", "Jew", "immigrant", "Mexican", "refugee", "black guy", "trans woman"],
    "vermin": ["vermin", "rats", "cockroaches", "parasites", "animals", "a disease", "subhuman"],
    "insult": ["idiot", "moron", "pathetic loser", "worthless clown", "stupid cow",
               "braindead troll", "ugly freak", "waste of space", "dumb bitch", "absolute cretin"],
    "swear": ["fucking", "damn", "bloody", "shitty", "goddamn", "freaking"],
    "thing": ["traffic", "printer", "wifi", "weather", "queue", "bus", "update", "meeting"],
    "food": ["coffee", "pizza", "burger", "nap", "cold beer", "croissant"],
    "game": ["boss fight", "final level", "raid", "ranked match", "last mission"],
    "pills": ["pills", "paracetamol", "sleeping pills", "insulin", "tablets"],
    "body": ["tits", "ass", "body", "boobs", "dick"],
    "n": ["20", "50", "99", "500", "1000", "5"],
    "url": ["bit.ly/3xQz9", "tinyurl.com/freegift", "win-prize.example", "t.co/abc123",
            "cash-now.example/claim"],
    "prize": ["iPhone", "gift card", "PS5", "cruise", "laptop"],
    "sport": ["football", "chess", "darts", "netball", "hockey"],
}  # fmt: skip

# (category or "" for benign, functionality, templates). A benign template is the hard
# negative of the category its functionality names.
CASES: list[tuple[str, str, list[str]]] = [
    ("violence", "threat: direct, with a time", [
        "I'm going to {hurt} {person} {time}",
        "{person} I know where you live, {time} you're getting {weapon} in the face",
        "watch your back {person}, {weapon} is waiting for you {time}",
        "I will find you {person} and you will bleed",
        "one more word {person} and I'll slit your throat",
        "if I see {person} at {place} again I'll put them in the hospital",
    ]),
    ("violence", "threat: incitement against a target", [
        "Someone should burn down {place} and everyone in it",
        "let's all meet at {place} {time} and teach {person} a lesson with {weapon}",
        "somebody needs to shoot up {place}, they deserve it",
        "go to {place} {time} and {hurt} whoever comes out",
    ]),
    ("violence", "threat: wishing harm on a real person", [
        "I hope {person} gets hit by a bus {time}",
        "{person} deserves to be beaten to death",
        "can't wait to see {person} bleeding on the floor",
    ]),
    ("violence", "threat: glorifying or planning attacks", [
        "the shooter at {place} was a hero, we need more like him",
        "how do I make a pipe bomb to hurt people at {place}",
        "I'm bringing {weapon} to {place} {time}, you'll all see",
    ]),
    ("", "violence negative: news", [
        "Police say two people were stabbed near {place} last night",
        "Three injured after a shooting downtown, police are asking for witnesses",
        "Court hears how the man attacked his neighbour with {weapon} in 2019",
        "Breaking: suspect arrested after the stabbing at the station",
    ]),
    ("", "violence negative: idiom or hyperbole", [
        "I could kill for a {food} right now",
        "this {swear} {thing} is killing me",
        "my boss is going to murder me if I'm late again lol",
        "we absolutely destroyed them in the {sport} final",
        "she totally slayed that performance tonight",
    ]),
    ("", "violence negative: fiction and games", [
        "this {game} literally murdered me twelve times",
        "in chapter 3 the detective finds the victim stabbed in the library",
        "finally beat the dragon with my sword, so satisfying",
        "the villain gets shot at the end of the film, best scene",
    ]),
    ("", "violence negative: sport, self-defence, condemnation", [
        "any tips for blocking a punch in boxing class?",
        "violence against anyone is never acceptable, thinking of the victims at {place}",
        "the self-defence course {time} covers escaping a wrist grab",
        "deer hunting season opens {time}, check your licence",
    ]),
    ("sexual", "sexual: solicitation", [
        "DM me for my nudes, ${n} a set",
        "selling my private videos, link in bio",
        "wanna hook up {time}? I'll pay ${n}",
        "escort services available {time}, discreet, text me",
        "I'm horny, anyone want to sext {time}?",
    ]),
    ("sexual", "sexual: unwanted sexual messages", [
        "send me pics of your {body} babe",
        "{person} show me your {body}",
        "hey sexy, take your clothes off for me",
        "{person} I want to fuck you until you scream",
        "rate my dick pic {person}",
        "{person} I'd bend you over and make you beg",
    ]),
    ("", "sexual negative: sex education and health", [
        "where can teens get confidential advice about contraception?",
        "how effective are condoms at preventing STIs?",
        "our school's sex education class covered consent {time}",
        "is it normal to have pain during sex? seeing my doctor {time}",
        "breast cancer screening saved my mum, please get checked",
    ]),
    ("", "sexual negative: relationships and survivors", [
        "we've been dating for a year and I still get butterflies",
        "survivors of sexual abuse deserve to be believed",
        "talking about my sexual orientation with my parents was hard but worth it",
        "date night {time}, booked the little Italian place",
    ]),
    ("self_harm", "self-harm: intent or disclosure", [
        "I want to kill myself {time}",
        "I can't do this anymore, {time} I'm ending it",
        "I wrote my goodbye letters, nobody would care if I was gone",
        "cutting again, it's the only thing that helps",
        "I've been thinking about suicide every day this week",
        "I don't want to be alive anymore",
        "tonight I'm going to take all my {pills} and sleep forever",
        "I keep hurting myself and I can't stop",
        "everyone would be better off if I killed myself",
    ]),
    ("self_harm", "self-harm: methods and promotion", [
        "how many {pills} does it take to die",
        "best way to hide self harm scars from my parents",
        "thinspo: if you eat today you failed",
        "going {n} days without eating, tips to stop feeling hungry?",
        "{person} just kill yourself, nobody would miss you",
        "which bridge is high enough to make sure you die",
        "pro-ana tips: chew gum and drink water so you never eat",
        "you should starve yourself until you're thin enough",
    ]),
    ("", "self-harm negative: recovery and support", [
        "six months clean from cutting today. if you're struggling, it gets better",
        "if you're struggling please call or text 988, you are not alone",
        "suicide prevention week starts {time}, here's how to support friends",
        "report on youth suicide rates calls for more school counsellors",
        "my therapist helped me stop hurting myself, so grateful",
        "how do I support a friend who told me they self harm?",
        "the hospital's eating disorder clinic opens a new ward {time}",
    ]),
    ("", "self-harm negative: idiom", [
        "I'm dying of laughter at this thread",
        "I'd rather die than watch that film again",
        "this {thing} makes me want to scream",
        "my {thing} died on me again, great",
    ]),
    ("harassment", "harassment: insult at a person", [
        "{person} you're a {insult}",
        "shut up {person}, you {insult}",
        "nobody at school can stand you {person}, you {insult}",
        "{person} is a {insult} and should delete their account",
        "go cry somewhere else, {insult}",
    ]),
    ("harassment", "harassment: pile-ons and doxxing", [
        "everyone go reply to {person} and tell them what a {insult} they are",
        "posting {person}'s home address so everyone can pay a visit",
        "flood {person}'s mentions until they quit",
    ]),
    ("", "harassment negative: untargeted profanity", [
        "this {thing} is {swear} ridiculous",
        "ugh my code won't compile again, {swear} annoying",
        "holy shit that concert was amazing",
        "fuck yeah we won the {sport} final!",
        "damn this {food} is good",
    ]),
    ("", "harassment negative: quoting abuse to report it", [
        "someone DM'd me 'you {insult}' after my post. reporting it",
        "got called a {insult} in the comments today, trying to ignore it",
        "a stranger told me I'm a {insult}, how do I block them?",
    ]),
    ("", "harassment negative: criticism, banter, self-talk", [
        "the minister's housing plan is a disaster and she should resign",
        "haha you absolute legend, see you at the pub {time}",
        "I'm such an idiot, left my keys at home again",
        "the referee made terrible calls all game",
    ]),
    ("hate", "hate: dehumanising a group", [
        "{group} are {vermin} and should be driven out of this country",
        "{group} are {vermin}, all of them",
        "I hate {group}, they are disgusting",
        "{group} are a plague on this country",
    ]),
    ("hate", "hate: exclusion and inherent criminality", [
        "every {member} is a criminal waiting to happen",
        "deport all {group}, they ruin everything",
        "{group} should not be allowed to vote",
        "never hire {group}, they are lazy and stupid by nature",
    ]),
    ("", "hate negative: counter-speech", [
        "saying {group} are {vermin} is disgusting and wrong",
        "calling {group} '{vermin}' is dehumanising, stop it",
        "I'm tired of people claiming {group} are criminals, the data shows otherwise",
        "hate against {group} has no place here",
    ]),
    ("", "hate negative: quoting hate to report it", [
        "the post said '{group} are {vermin}' and I reported it",
        "my grandmother was called a slur at work in the 1960s, here is what it did to her",
        "someone sprayed '{group} out' on the wall, the council is cleaning it",
    ]),
    ("", "hate negative: identity, neutral or proud", [
        "{group} celebrated the festival in the park {time}",
        "as one of the {group} in my town I love this community",
        "I think the immigration quota is too high for our housing supply",
        "we're here, we're queer, get used to it",
    ]),
    ("spam", "spam: prizes and phishing", [
        "Congrats! You've won a free {prize}! Claim at {url} before it expires",
        "your account is locked, verify your password at {url}",
        "you have been selected for a {prize}, reply with your card details",
    ]),
    ("spam", "spam: scams and bulk promotion", [
        "double your bitcoin in 24 hours guaranteed, DM me to start",
        "buy 10k followers for ${n} at {url}",
        "check out my channel and subscribe!!! {url}",
        "make ${n} a day from home, click {url}",
    ]),
    ("", "spam negative: honest promotion and links", [
        "my bakery is open again this Saturday from 8am, come say hi",
        "here's the link to the recipe you asked for: {url}",
        "our charity run raised ${n} for the children's hospital, thank you all",
        "I won a free {food} at the cafe {time}, lucky me",
    ]),
]  # fmt: skip

_SLOT = re.compile(r"\{(\w+)\}")


def fill(template: str, rng: random.Random) -> list[str]:
    names = _SLOT.findall(template)
    if not names:
        return [template]
    combos = list(itertools.product(*(SLOTS[n] for n in names)))
    rng.shuffle(combos)
    out = []
    for combo in combos[:VARIANTS]:
        text = template
        for name, value in zip(names, combo, strict=True):
            text = text.replace("{" + name + "}", value, 1)
        out.append(text)
    return out


def split_of(index: int) -> str:
    # The second template of every functionality (of four or more, also the fifth) is held out:
    # each functionality is on both sides, and no template is.
    return "test" if index % 4 == 1 else "train"


def rows() -> list[dict[str, object]]:
    rng = random.Random(14)
    out: list[dict[str, object]] = []
    for category, functionality, templates in CASES:
        for i, template in enumerate(templates):
            group = f"{functionality} #{i}"
            for text in fill(template, rng):
                labels = {c: c == category for c in CATEGORIES}
                if "kill yourself" in text:
                    labels["harassment"] = True  # also aimed at a person
                row = {"text": text, **labels, "flagged": bool(category) or labels["harassment"]}
                out.append(row | {"functionality": functionality, "group": group,
                                  "split": split_of(i)})  # fmt: skip
    return out


if __name__ == "__main__":
    path = Path(__file__).with_name("functional.jsonl")
    with path.open("w", encoding="utf-8") as handle:
        for row in rows():
            handle.write(json.dumps(row, ensure_ascii=False) + "\n")
    print(f"wrote {path}")
