"""What happens inside a call: text chat, documents, the document camera's stills,
stitching, the expert's view region and the clerk's preview.
"""
