"""The score command's config, apart from the main tree (whose ``data`` group would take ``data=FILE``)."""
