"""AdaCLIP's fixed constants, prompt vocabulary and training recipe (spec §2-§4, manifest).

Kept in one module so the numbers that decide outputs are written down once, next to the reason
they have these values; every other module imports them from here.
"""

from __future__ import annotations

#: Prompt tokens per prompted block (``prompting_length``).
PROMPT_LENGTH = 5
#: Blocks 0..3 carry prompts (``prompting_depth``); text prompts are only *written* at 1..3 (Q4).
PROMPT_DEPTH = 4
#: Number of tapped vision blocks (n/4, n/2, 3n/4, n).
N_TAPS = 4
#: The literal temperature of pixel logits, HSF top-k and the image score (Q7); CLIP's
#: ``logit_scale`` is never read.
TEMPERATURE = 100.0
#: HSF: clusters, patches kept (5 * K), weight of the cluster feature in the fusion.
K_CLUSTERS = 20
TOPK_FACTOR = 5
HSF_ALPHA = 0.2
#: test.py seeds numpy's global RNG with 111 before the first image; a fixed KMeans
#: ``random_state`` of 111 reproduces a fresh run image by image (Q10).
KMEANS_SEED = 111
#: scipy.ndimage.gaussian_filter defaults used by test.py (Q11).
SMOOTHING_SIGMA = 4.0
SMOOTHING_TRUNCATE = 4.0
DEFAULT_IMAGE_SIZE = 518
#: Static prompts are drawn from N(0, 0.02^2) in the authors' constructor.
STATIC_PROMPT_STD = 0.02
#: Seed of a fresh (untrained) set of trainable tensors: setup_seed(111) in train.py.
FRESH_INIT_SEED = 111

NORMAL_STATES: tuple[str, ...] = ("{}", "flawless {}", "perfect {}", "unblemished {}", "{} without flaw",
                                  "{} without defect", "{} without damage")
ABNORMAL_STATES: tuple[str, ...] = ("damaged {}", "broken {}", "{} with flaw", "{} with defect", "{} with damage")
TEMPLATES: tuple[str, ...] = ("a bad photo of a {}.", "a low resolution photo of the {}.", "a bad photo of the {}.",
                              "a cropped photo of the {}.")

#: train.py defaults (AdamW over the 38 tensors, no schedule).
TRAINING_RECIPE = {"optimizer": "adamw", "lr": 0.01, "betas": (0.5, 0.999), "eps": 1e-8, "weight_decay": 0.01,
                   "epochs": 5, "batch_size": 1, "seed": 111}
#: Focal loss (probabilities in, gamma 2, label smoothing clamp 1e-5) and Dice smoothing.
FOCAL_GAMMA = 2.0
FOCAL_SMOOTH = 1e-5
DICE_SMOOTH = 1.0

PREPROCESSING = "PIL RGB, bicubic squash to SxS (aspect ratio ignored), /255, CLIP mean/std"
