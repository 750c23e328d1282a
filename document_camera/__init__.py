"""The document camera: capture, page processing, the detail-tuned video track, stills and
large-sheet stitching.

    sources.py          where frames come from (V4L2, file, synthetic) and SourceError
    synthetic.py        rendered pages with known text and corners, photographed imperfectly
    page_detection.py   the page's quadrilateral, to about a pixel
    rectification.py    perspective warp to an upright page
    illumination.py     flattening uneven light, contrast
    sharpness.py        the focus measure
    pipeline.py         the steps together (switchable), off the event loop
    notices.py          what the clerk is told, in Finnish, Swedish and English
    rate_control.py     keep the resolution, trade the frame rate for bandwidth
    encoder.py          the VP8 encoder of the document track
    track.py            the aiortc video track
    zoom.py             remote zoom: a region of the page from the camera's full resolution
    zoom_bench.py       gesture-to-detail latency of remote zoom, headless
    stills.py           full-resolution stills and the StillSink protocol
    stitching.py        guided tiles of A2–A0 sheets and a checked stitch
    ocr.py, bench.py    the readability benchmark (`etapalvelu bench document-camera`)

The endpoint agent that publishes the track into calls is `endpoint/agent.py`.
"""
