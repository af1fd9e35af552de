"""A small labelled sample for the cascade test, written for it: is the post offensive (insulting
or abusive toward a person)? Mostly clear cases, a few that a word-level model gets wrong."""

from __future__ import annotations

LABELLED: list[tuple[str, bool]] = [
    # (text, offensive?)
    ("the new bridge downtown finally opened after two years", False),
    ("my sourdough starter survived the week, bread tonight", False),
    ("anyone know a good trail for a beginner hike near the lake", False),
    ("the library extended its weekend hours, great news for students", False),
    ("that documentary about octopuses was fascinating", False),
    ("traffic on the ring road is terrible this morning", False),
    ("I disagree with the council's parking plan, it ignores cyclists", False),
    ("the concert was loud but the band was brilliant", False),
    ("happy birthday to my sister, proud of you", False),
    ("does anyone have a recipe for vegan lasagna", False),
    ("the match went to penalties and we lost, gutted", False),
    ("new phone battery lasts two days, impressive", False),
    ("this movie was boring and way too long", False),
    ("the referee made some questionable calls tonight", False),
    ("our team shipped the release on time, thanks everyone", False),
    ("rain again, the garden is happy at least", False),
    ("I think the tax proposal is a bad idea for small shops", False),
    ("the museum's new dinosaur wing opens on saturday", False),
    ("this stupid printer jammed again", False),
    ("what a damn good game that was", False),
    ("you are a complete idiot and everyone knows it", True),
    ("shut up, nobody asked for your stupid opinion", True),
    ("what the fuck is wrong with you, moron", True),
    ("you're trash and your posts are garbage", True),
    ("go away you pathetic loser", True),
    ("you are the dumbest person on this forum", True),
    ("fuck off and die you worthless piece of shit", True),
    ("nobody likes you, you ugly idiot", True),
    ("what a brainless clown you are", True),
    ("you stupid bitch, learn to read", True),
    ("your mother should be ashamed of raising such a moron", True),
    ("get lost, you disgusting creep", True),
    ("you are a fucking joke", True),
    ("typical dumbass take from a total loser", True),
    ("keep crying, snowflake, nobody cares about you", True),
    ("only an idiot would believe this", True),
]
