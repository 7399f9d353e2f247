"""``projects/{key}/project-files/preview``: what saving a scenario would snapshot beside its notebook.

The lab's schedule dialog shows it before saving (how many files, how big, which), so that nobody
learns at save time that a folder holds a data dump. It needs what saving needs (``write_content``
and ``write_isolated_code``) and reads below the Jupyter server's root, as saving does.
"""

from himalia.api.base import APIHandler, operation
from himalia.wire.scenarios import FilesPreview, PreviewFiles


class PreviewFilesHandler(APIHandler):
    route = "/projects/{key}/project-files/preview"

    @operation(
        "The project files a scenario whose first notebook is this one would snapshot, refused as saving "
        "would be; nothing is stored (write_content and write_isolated_code).",
        body=PreviewFiles,
        response=FilesPreview,
    )
    async def post(self, key: str, spec: PreviewFiles) -> FilesPreview:
        return await self.call(self.control_plane.scenarios.preview_files, self.caller, key, spec)


handlers = [PreviewFilesHandler]
