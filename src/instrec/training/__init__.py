"""Learning from the user's labelled photos: a projection after the frozen backbone's pooling."""
