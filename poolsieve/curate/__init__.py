"""The DataComp loop after the pool: features, filters, subsets, resharding, training, evaluation."""
