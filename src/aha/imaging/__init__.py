"""Images in and pictures out: the two ends of the data flow.

- :mod:`aha.imaging.images`: files, URLs, PIL images and arrays read into one checked RGB image;
- :mod:`aha.imaging.image_geometry`: where the image processor's output lies in the original image, and maps
  carried back to the original size;
- :mod:`aha.imaging.visualization`: overlays, figure grids and deletion / insertion curve plots.

Nothing is imported here: each module is imported by its own path, so importing one never imports the others.
"""
