"""The bounds on what the zoo accepts, in one place, importable without torch.

Files, configs, Hub ids, images and recipes may come from strangers. Each value below is checked
before anything is allocated or any request is made, so that a small hostile input cannot cost
unbounded memory or time; going over one is a `zoo.ZooError` with a one-line message. The
README's "What the zoo refuses" section tables them.
"""

from __future__ import annotations

# Stochastic forward samples per image, for predict, evaluate and recipes. Within this bound a
# stochastic pass always runs in chunks of at most 2,048 image-samples (zoo.models.base).
MAX_SAMPLES = 1024
# Image-samples that one evaluation batch may hold (batch_size x samples): the default
# 1,000 x 16 is 16,000; 1,000 x 1,024 just fits.
MAX_EVALUATION_ROWS = 1_048_576
# Image-samples that one training step may hold (batch_size x loss_samples).
MAX_TRAINING_ROWS = 65_536
MAX_EPOCHS = 10_000
# Members of a deep ensemble.
MAX_MEMBERS = 64
# Models that one zoo compare loads and measures side by side.
MAX_COMPARED_MODELS = 16

# Image files: decoded pixels (width x height), and the longer side, which also bounds the
# square an image is padded to.
MAX_IMAGE_PIXELS = 40_000_000
MAX_IMAGE_SIDE = 8192
MAX_IMAGE_FILE_BYTES = 128 << 20

# A dataset file: MNIST's and FashionMNIST's largest, the training images, is 47,040,016 bytes.
MAX_DATA_FILE_BYTES = 64 << 20

# Model folders.
MAX_CONFIG_BYTES = 1 << 20  # config.json
MAX_WEIGHTS_BYTES = 256 << 20  # model.safetensors
MAX_WEIGHTS_HEADER_BYTES = 1 << 20  # the JSON header inside a safetensors file
MAX_CLASSES = 100_000
MAX_LABEL_LENGTH = 200  # characters in one class label
MAX_NORMALISATION = 1e4  # |mean| and 1 / std, std and mean of the pixels scaled to [0, 1]
# A model's temperature (its logits are divided by it): from 1 / MAX_TEMPERATURE to this.
MAX_TEMPERATURE = 100.0
MAX_LOG_BYTES = 16 << 20  # train_log.jsonl: a line of about 500 bytes per epoch
MAX_REPORT_BYTES = 1 << 20  # eval.json
MAX_RECIPE_BYTES = 1 << 20  # a recipe's TOML
# A training checkpoint: the weights, the best weights and two optimiser moments, and the log.
MAX_CHECKPOINT_BYTES = 4 * MAX_WEIGHTS_BYTES + MAX_LOG_BYTES

# Hub revisions (a branch, tag or commit), as git and the Hub bound a ref name.
MAX_REVISION_LENGTH = 255
# A recipe's name, which is also its default folder, runs/NAME.
MAX_NAME_LENGTH = 200

# Seconds to wait for a TCP connection to the Hub (or its proxy) before a download: a host
# that cannot be reached at all fails at once instead of after the client's retries.
HUB_CONNECT_TIMEOUT_S = 5.0

# Training recipes: the learning rate and the weight decay above which no run trains.
MAX_LEARNING_RATE = 10.0
MAX_WEIGHT_DECAY = 1.0
