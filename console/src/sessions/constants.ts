/** The field every turn schema has: the reply the user heard or read (agent_configs/models.py). */
export const SYSTEM_RESPONSE = "system_response";
