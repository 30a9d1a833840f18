"""Sample v2 app for the blob trigger tests: one recording function and one that always fails."""

import azure.functions as func

app = func.FunctionApp()

# What each function saw, read by the tests (the module is re-imported for every test).
RECEIVED: list[dict] = []
FAILED: list[str] = []


@app.blob_trigger(
    arg_name="blob", path="%UPLOADS_CONTAINER%/in/{name}.pdf", connection="AzureWebJobsStorage"
)
async def record_upload(blob: func.InputStream) -> None:
    RECEIVED.append(
        {
            "name": blob.name,
            "length": blob.length,
            "uri": blob.uri,
            "properties": blob.blob_properties,
            "metadata": blob.metadata,
            "content": blob.read(),
        }
    )


@app.blob_trigger(
    arg_name="blob",
    path="%FAILING_CONTAINER%/{name}",
    connection="AzureWebJobsStorage",
    source=func.BlobSource.EVENT_GRID,
)
def always_fail(blob: func.InputStream) -> None:
    FAILED.append(blob.name)
    raise RuntimeError(f"cannot process {blob.name}")
