"""The OpenAPI 3 description of /api/v1/, served at /api/v1/schema/ and rendered at /api/v1/docs/.

Written by hand next to the views it describes; test_api_schema.py checks
the API against it.
"""

from __future__ import annotations

from classifier.ml import labels
from classifier.ml.predictor import BANDS
from classifier.ml.preprocess import FORMAT_NAMES


def _error(description: str) -> dict:
    return {
        "description": description,
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
    }


def _json(description: str, ref: str) -> dict:
    return {
        "description": description,
        "content": {"application/json": {"schema": {"$ref": f"#/components/schemas/{ref}"}}},
    }


AUTH_ERRORS = {
    "401": _error("No key or session, or the key is not valid or was revoked."),
    "403": _error("Signed in by session, but the CSRF token is missing or wrong."),
}
ID_PARAMETER = {
    "name": "id",
    "in": "path",
    "required": True,
    "schema": {"type": "integer", "minimum": 1},
    "description": "The prediction's id.",
}


def schema(server_url: str = "/api/v1/") -> dict:
    """The OpenAPI 3.0 document of the API."""
    classes = list(labels.CLASSES)
    answers = [*labels.NOTES, labels.UNKNOWN]
    probability = {"type": "number", "minimum": 0, "maximum": 1}
    return {
        "openapi": "3.0.3",
        "info": {
            "title": "usbills API",
            "version": "1",
            "description": (
                "Recognise US banknotes in photos. Authenticate with an API key made on "
                "the account page (`Authorization: Bearer usb_...`), or with the site's "
                "session cookie plus the `X-CSRFToken` header. Labels are the classes "
                f"{', '.join(classes)}; an answer is a note or `unknown`."
            ),
        },
        "servers": [{"url": server_url.rstrip("/")}],
        "security": [{"apiKey": []}, {"session": []}],
        "paths": {
            "/predictions/": {
                "get": {
                    "operationId": "listPredictions",
                    "summary": "Your predictions, newest first, 20 a page.",
                    "parameters": [
                        {
                            "name": "page",
                            "in": "query",
                            "required": False,
                            "schema": {"type": "integer", "minimum": 1},
                        }
                    ],
                    "responses": {
                        "200": _json("A page of predictions.", "PredictionPage"),
                        **AUTH_ERRORS,
                        "404": _error("No such page."),
                    },
                },
                "post": {
                    "operationId": "createPrediction",
                    "summary": "Upload a photo; the model's answer comes back.",
                    "description": (
                        f"{FORMAT_NAMES}; at most the site's upload cap "
                        "(10 MB by default). The same checks and per-user rate limit as the "
                        "upload page."
                    ),
                    "requestBody": {
                        "required": True,
                        "content": {
                            "multipart/form-data": {
                                "schema": {
                                    "type": "object",
                                    "required": ["image"],
                                    "properties": {"image": {"type": "string", "format": "binary"}},
                                }
                            }
                        },
                    },
                    "responses": {
                        "201": _json("The prediction made.", "Prediction"),
                        "400": _error("Not an image the site accepts, or no image."),
                        **AUTH_ERRORS,
                        "413": _error("The file is over the upload cap."),
                        "429": _error("Too many uploads; see Retry-After."),
                        "503": _error(
                            "The model or the photo storage is not available; nothing was saved."
                        ),
                    },
                },
            },
            "/predictions/{id}/": {
                "get": {
                    "operationId": "getPrediction",
                    "summary": "One of your predictions.",
                    "parameters": [ID_PARAMETER],
                    "responses": {
                        "200": _json("The prediction.", "Prediction"),
                        **AUTH_ERRORS,
                        "404": _error("Not one of your predictions."),
                    },
                },
                "delete": {
                    "operationId": "deletePrediction",
                    "summary": "Delete one of your photos, its prediction and its smaller copies.",
                    "parameters": [ID_PARAMETER],
                    "responses": {
                        "204": {"description": "Deleted."},
                        **AUTH_ERRORS,
                        "404": _error("Not one of your predictions."),
                    },
                },
            },
            "/predictions/{id}/photo/": {
                "get": {
                    "operationId": "getPredictionPhoto",
                    "summary": "The photo as it was uploaded, in the type its content showed.",
                    "parameters": [ID_PARAMETER],
                    "responses": {
                        "200": {
                            "description": "The photo.",
                            "content": {
                                "image/*": {"schema": {"type": "string", "format": "binary"}}
                            },
                        },
                        **AUTH_ERRORS,
                        "404": _error("Not one of your predictions."),
                    },
                },
            },
            "/predictions/{id}/feedback/": {
                "post": {
                    "operationId": "givePredictionFeedback",
                    "summary": "Say which class the photo really shows.",
                    "parameters": [ID_PARAMETER],
                    "requestBody": {
                        "required": True,
                        "content": {
                            "application/json": {
                                "schema": {"$ref": "#/components/schemas/Feedback"}
                            },
                            "application/x-www-form-urlencoded": {
                                "schema": {"$ref": "#/components/schemas/Feedback"}
                            },
                        },
                    },
                    "responses": {
                        "200": _json("The prediction, with your feedback.", "Prediction"),
                        "400": _error("'label' is missing or not a class."),
                        **AUTH_ERRORS,
                        "404": _error("Not one of your predictions."),
                    },
                },
            },
        },
        "components": {
            "securitySchemes": {
                "apiKey": {"type": "http", "scheme": "bearer", "description": "usb_..."},
                "session": {"type": "apiKey", "in": "cookie", "name": "sessionid"},
            },
            "schemas": {
                "Feedback": {
                    "type": "object",
                    "required": ["label"],
                    "properties": {"label": {"type": "string", "enum": classes}},
                },
                "Prediction": {
                    "type": "object",
                    "additionalProperties": False,
                    "required": [
                        "id",
                        "answer",
                        "answer_display",
                        "band",
                        "headline",
                        "label",
                        "confidence",
                        "probabilities",
                        "threshold",
                        "model_version",
                        "created",
                        "feedback",
                        "review",
                        "links",
                    ],
                    "properties": {
                        "id": {"type": "integer"},
                        "answer": {"type": "string", "enum": answers},
                        "answer_display": {"type": "string"},
                        "band": {
                            "type": "string",
                            "enum": list(BANDS),
                            "description": "how sure the answer is: sure, unsure (check it), "
                            "not_a_note (confidently no US note) or unknown (no answer); the "
                            "bands come from the model card",
                        },
                        "headline": {
                            "type": "string",
                            "description": "the answer in words, as the result page says it",
                        },
                        "label": {"type": "string", "enum": classes},
                        "confidence": probability,
                        "probabilities": {
                            "type": "object",
                            "required": classes,
                            "properties": {c: probability for c in classes},
                            "additionalProperties": False,
                        },
                        "threshold": probability,
                        "model_version": {"type": "string"},
                        "created": {"type": "string", "format": "date-time"},
                        "feedback": {
                            "type": "object",
                            "required": ["label", "flagged"],
                            "properties": {
                                "label": {"type": "string", "enum": classes, "nullable": True},
                                "flagged": {"type": "boolean"},
                            },
                        },
                        "review": {
                            "type": "object",
                            "required": ["label"],
                            "properties": {
                                "label": {
                                    "type": "string",
                                    "enum": classes,
                                    "nullable": True,
                                    "description": "the class a reviewer set; null until then",
                                },
                            },
                        },
                        "links": {
                            "type": "object",
                            "required": ["self", "feedback", "html", "photo"],
                            "properties": {
                                k: {"type": "string", "format": "uri"}
                                for k in ("self", "feedback", "html", "photo")
                            },
                        },
                    },
                },
                "PredictionPage": {
                    "type": "object",
                    "required": ["count", "page", "pages", "next", "previous", "results"],
                    "properties": {
                        "count": {"type": "integer", "minimum": 0},
                        "page": {"type": "integer", "minimum": 1},
                        "pages": {"type": "integer", "minimum": 1},
                        "next": {"type": "string", "format": "uri", "nullable": True},
                        "previous": {"type": "string", "format": "uri", "nullable": True},
                        "results": {
                            "type": "array",
                            "items": {"$ref": "#/components/schemas/Prediction"},
                        },
                    },
                },
                "Error": {
                    "type": "object",
                    "required": ["error"],
                    "properties": {
                        "error": {
                            "type": "object",
                            "required": ["code", "message"],
                            "properties": {
                                "code": {"type": "string"},
                                "message": {"type": "string"},
                                "fields": {
                                    "type": "object",
                                    "additionalProperties": {
                                        "type": "array",
                                        "items": {"type": "string"},
                                    },
                                },
                                "retry_after": {"type": "integer"},
                            },
                        }
                    },
                },
            },
        },
    }
