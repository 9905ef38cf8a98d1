"""From camera footage to a crop dataset: videos plus tracker output in, crops and a manifest out."""
