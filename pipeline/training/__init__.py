"""Tools that make demo reels and training corpora and train the bundled separation model (`reelsplit demo-reel`,
`corpus build`, `train`); `reelsplit run` never imports them."""
