"""How samples reach the loop: samplers, sample wrappers (seeds, skip_corrupt), image selection
(max_images, split), the loaders of a run and the prefetchers."""
