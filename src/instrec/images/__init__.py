"""Image input: every path, bytes, PIL image or array becomes a checked RGB :class:`LoadedImage`."""

from instrec.images.loading import (
    IMAGE_EXTENSIONS,
    ImageInput,
    LoadedImage,
    iter_image_files,
    load_image,
    load_images,
)

__all__ = ["IMAGE_EXTENSIONS", "ImageInput", "LoadedImage", "iter_image_files", "load_image", "load_images"]
