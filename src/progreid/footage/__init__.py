"""From camera footage to a crop dataset: videos plus tracker output in, crops and a manifest out."""

DEFAULT_STRIDE = "0.4s"  # per track, one crop per 0.4 s (10 frames at 25 fps), whatever the video's frame rate
