"""Data: from a dataset name to split, transformed datasets and DataLoaders (`loading`), through
the ImageFolder scan (`imagefolder`), decoding (`decode`), the decoded-image cache (`decoded`), the
split (`split`), the transforms (`transforms`) and the Dataset (`dataset`). Generated datasets:
`synthetic`, `photos`; Kvasir v2: `kvasir`."""
