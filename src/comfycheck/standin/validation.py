"""POST /prompt validation, following ComfyUI's execution.validate_prompt (error types, messages, quirks).

The recordings in shared/reference/comfyui/prompt_error_*.json are the contract; for instance a link to a
missing node is reported on the *linking* node's downstream input, exactly as the real server does.
"""
from __future__ import annotations

import traceback
from collections.abc import Mapping
from typing import Any, Protocol


class ValidateHook(Protocol):
    """A node's VALIDATE_INPUTS: the inputs it checks, and why a value is refused (None: it is fine)."""

    inputs: tuple[str, ...]

    def __call__(self, value: Any) -> str | None: ...


def _input_spec(node_def: dict, name: str) -> tuple[Any, str, dict]:
    for category in ("required", "optional"):
        spec = node_def["input"].get(category, {}).get(name)
        if spec is not None:
            extra = spec[1] if len(spec) > 1 else {}
            return spec[0], category, extra
    raise KeyError(name)


def combo_options(input_type: Any, extra: dict) -> list | None:
    if isinstance(input_type, list):
        return input_type
    if input_type == "COMBO":
        return extra.get("options", [])
    return None


def _types_match(received: str, expected: Any) -> bool:
    if not isinstance(expected, str) or received == "*" or expected == "*":
        return True
    return received in expected.split(",") or expected in received.split(",")


def _title(node: dict, node_id: str) -> str:
    return (node.get("_meta") or {}).get("title") or node.get("class_type") or node_id


def validate_prompt(prompt: dict, defs: dict[str, dict], custom: Mapping[str, ValidateHook]):
    """Return (ok, error, good_outputs, node_errors) like ComfyUI; `custom` holds VALIDATE_INPUTS hooks."""
    outputs = []
    for node_id, node in prompt.items():
        if "class_type" not in node:
            return _missing_type(node, node_id, None, "has no class_type. The workflow may be corrupted or a "
                                 "custom node is missing.")
        class_type = node["class_type"]
        if class_type not in defs:
            return _missing_type(node, node_id, class_type, "not found. The custom node may not be installed.")
        if defs[class_type].get("output_node"):
            outputs.append(node_id)
    if not outputs:
        return False, _simple("prompt_no_outputs", "Prompt has no outputs"), [], {}

    validated: dict[str, tuple] = {}
    good: list[str] = []
    node_errors: dict[str, dict] = {}
    for out in outputs:
        ok, reasons, _ = _validate_inputs(prompt, out, validated, defs, custom)
        if ok:
            good.append(out)
            continue
        for node_id, (valid, reasons, _) in validated.items():
            if valid is not True and reasons:
                entry = node_errors.setdefault(
                    node_id, {"errors": reasons, "dependent_outputs": [], "class_type": prompt[node_id]["class_type"]}
                )
                entry["dependent_outputs"].append(out)
    if not good:
        return False, _simple("prompt_outputs_failed_validation", "Prompt outputs failed validation"), [], node_errors
    return True, None, good, node_errors


def _missing_type(node: dict, node_id: str, class_type: str | None, problem: str):
    title = _title(node, node_id)
    return False, {
        "type": "missing_node_type",
        "message": f"Node '{title}' {problem}",
        "details": f"Node ID '#{node_id}'",
        "extra_info": {"node_id": node_id, "class_type": class_type, "node_title": title},
    }, [], {}


def _simple(type_: str, message: str) -> dict:
    return {"type": type_, "message": message, "details": "", "extra_info": {}}


def _validate_inputs(prompt: dict, node_id: str, validated: dict, defs: dict,
                     custom: Mapping[str, ValidateHook]) -> tuple:
    if node_id in validated:
        return validated[node_id]
    node = prompt[node_id]
    inputs = node.get("inputs", {})
    class_type = node["class_type"]
    node_def = defs[class_type]
    names = list(node_def["input"].get("required", {})) + list(node_def["input"].get("optional", {}))
    hook = custom.get(class_type)
    errors: list[dict] = []
    valid = True
    for name in names:
        input_type, category, extra = _input_spec(node_def, name)
        if name not in inputs:
            if category == "required":
                errors.append({
                    "type": "required_input_missing", "message": "Required input is missing",
                    "details": name, "extra_info": {"input_name": name},
                })
            continue
        val = inputs[name]
        info = [input_type, extra] if extra else [input_type]
        if isinstance(val, list):
            if len(val) != 2:
                errors.append({
                    "type": "bad_linked_input",
                    "message": "Bad linked input, must be a length-2 list of [node_id, slot_index]",
                    "details": name,
                    "extra_info": {"input_name": name, "input_config": info, "received_value": val},
                })
                continue
            origin = val[0]
            received = tuple(defs[prompt[origin]["class_type"]]["output"])[val[1]]  # RETURN_TYPES is a tuple
            if not _types_match(received, input_type):
                errors.append({
                    "type": "return_type_mismatch", "message": "Return type mismatch between linked nodes",
                    "details": f"{name}, received_type({received}) mismatch input_type({input_type})",
                    "extra_info": {"input_name": name, "input_config": info, "received_type": received,
                                   "linked_node": val},
                })
                continue
            try:
                if _validate_inputs(prompt, origin, validated, defs, custom)[0] is False:
                    valid = False
            except Exception as ex:  # noqa: BLE001 - ComfyUI reports any inner failure this way
                valid = False
                validated[origin] = (False, [{
                    "type": "exception_during_inner_validation",
                    "message": "Exception when validating inner node",
                    "details": str(ex),
                    "extra_info": {
                        "input_name": name, "input_config": info, "exception_message": str(ex),
                        "exception_type": type(ex).__name__,
                        "traceback": traceback.format_tb(ex.__traceback__),
                        "linked_node": val,
                    },
                }], origin)
            continue
        try:
            if input_type == "INT":
                val = int(val)
            elif input_type == "FLOAT":
                val = float(val)
            elif input_type == "STRING":
                val = str(val)
            elif input_type == "BOOLEAN":
                val = bool(val)
        except Exception as ex:  # noqa: BLE001 - ComfyUI reports any failed conversion this way
            errors.append({
                "type": "invalid_input_type",
                "message": f"Failed to convert an input value to a {input_type} value",
                "details": f"{name}, {val}, {ex}",
                "extra_info": {"input_name": name, "input_config": info, "received_value": val,
                               "exception_message": str(ex)},
            })
            continue
        if hook and name in hook.inputs:
            continue
        if "min" in extra and val < extra["min"]:
            errors.append({
                "type": "value_smaller_than_min", "message": f"Value {val} smaller than min of {extra['min']}",
                "details": name, "extra_info": {"input_name": name, "input_config": info, "received_value": val},
            })
            continue
        if "max" in extra and val > extra["max"]:
            errors.append({
                "type": "value_bigger_than_max", "message": f"Value {val} bigger than max of {extra['max']}",
                "details": name, "extra_info": {"input_name": name, "input_config": info, "received_value": val},
            })
            continue
        options = combo_options(input_type, extra)
        if options is not None and val not in options:
            listed = f"(list of length {len(options)})" if len(options) > 20 else str(options)
            errors.append({
                "type": "value_not_in_list", "message": "Value not in list",
                "details": f"{name}: '{val}' not in {listed}",
                "extra_info": {"input_name": name, "input_config": info if len(options) <= 20 else None,
                               "received_value": val},
            })
    if hook:
        for name in hook.inputs:
            if name in inputs and not isinstance(inputs[name], list):
                problem = hook(inputs[name])
                if problem:
                    errors.append({
                        "type": "custom_validation_failed", "message": "Custom validation failed for node",
                        "details": f"{name} - {problem}", "extra_info": {"input_name": name},
                    })
    result = (False, errors, node_id) if errors or valid is not True else (True, [], node_id)
    validated[node_id] = result
    return result
