"""Word lists shared by the behaviour tasks.

Every word here is frequent in the zoo corpus, so the zoo tokenizer makes each one
(with its leading space) a single token; `tests/tasks` checks that. Another model's
tokenizer keeps only some whole: the tasks then draw from those (`interp.tasks.tokens`).
"""

# 160 short first names. The last 32 are held out of every IOI training prompt.
NAMES = (
    "Mary John Anna Paul Sarah James Emma David Lucy Mark Kate Tom Jane Peter Alice Bob "
    "Laura Sam Helen Jack Rose Mike Grace Adam Ruth Ben Clara Dan Ella Fred Julia George "
    "Nina Henry Olga Ian Paula Jim Rita Ken Sofia Leo Tina Max Vera Ned Wendy Oscar Amy "
    "Ray Beth Carl Diana Eric Fiona Greg Hanna Ivan Joan Kyle Lily Luke Maria Neil Nora "
    "Owen Pam Rick Sue Ted Tara Vince Zoe Alan Bella Chris Dora Ed Eva Frank Gina Hugo "
    "Iris Josh Karen Liam Mia Nick Olive Phil Rachel Steve Tessa Victor Wanda Arthur "
    "Betty Colin Daisy Edgar Flora Gary Holly Isaac Jill Kevin Linda Martin Nancy Oliver "
    "Penny Roger Sally Simon Tracy Walter Alex Carol Dean Emily Felix Hazel Igor Jenny "
    "Karl Lena Milo Nadia Otto Polly Quinn Ralph Sonia Todd Una Wade Yara Zack Abby Brian "
    "Cathy Derek Elsa Finn Gwen Hank Ivy Jonas Kira Lars Mona Noel Opal Pedro Rex"
).split()
HELDOUT_NAMES = NAMES[-32:]
TRAIN_NAMES = NAMES[:-32]

PLACES = ("store", "park", "school", "market", "office", "library", "station", "garden",
          "beach", "church", "hospital", "restaurant", "museum", "farm", "bank", "river")
OBJECTS = ("drink", "book", "ball", "letter", "bag", "gift", "key", "ring", "card",
           "cake", "phone", "hat", "box", "pen", "map", "cup")

# Topic words with known labels: the ground truth for SAE feature dashboards.
TOPICS = {
    "colour": ("red", "blue", "green", "yellow", "purple", "orange", "black", "white",
               "brown", "pink", "grey", "golden"),
    "animal": ("cat", "dog", "horse", "bird", "fox", "wolf", "bear", "mouse", "rabbit",
               "lion", "tiger", "sheep"),
    "number": ("one", "two", "three", "four", "five", "six", "seven", "eight", "nine",
               "ten", "twelve", "twenty"),
}
