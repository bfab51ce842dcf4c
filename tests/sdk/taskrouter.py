"""The onboarding guide's TaskRouter setup (and a task channel, a worker's capacity on it and the
workspace's settings), done with Twilio's official Python SDK against Switchboard. Only the SDK's host is changed (the TaskRouter domain's base URL); everything else
is the SDK as published. Prints one line per step; exits non-zero on the first surprise.

Usage: python taskrouter.py BASE_URL ACCOUNT_SID AUTH_TOKEN
"""

import json
import sys

from twilio.rest import Client


def main(base_url: str, account_sid: str, auth_token: str) -> None:
    client = Client(account_sid, auth_token)
    client.taskrouter.base_url = base_url  # the one change: Switchboard instead of Twilio

    workspace = client.taskrouter.v1.workspaces.list()[0]
    ws = client.taskrouter.v1.workspaces(workspace.sid)
    print("workspace", workspace.friendly_name)

    ready = ws.activities.create(friendly_name="Ready", available=True)
    lunch = ws.activities.create(friendly_name="Lunch", available=False)
    assert ready.available is True and lunch.available is False, (ready.available, lunch.available)
    print("activities", ready.friendly_name, lunch.friendly_name)

    skills = {"routing": {"skills": ["Sales"], "levels": {"Sales": 4}}, "contact_uri": "client:sam"}
    sam = ws.workers.create(friendly_name="sam", attributes=json.dumps(skills), activity_sid=lunch.sid)
    kim = ws.workers.create(friendly_name="kim", attributes=json.dumps({"routing": {"skills": ["Support"]}}))
    assert json.loads(sam.attributes)["routing"]["levels"]["Sales"] == 4
    print("workers", sam.friendly_name, kim.friendly_name, sam.activity_name)

    queue = ws.task_queues.create(
        friendly_name="Sales desk", target_workers='routing.skills HAS "Sales"', max_reserved_workers=1
    )
    print("queue", queue.friendly_name, queue.task_order)

    configuration = {
        "task_routing": {
            "filters": [
                {
                    "filter_friendly_name": "Send to Sales",
                    "expression": '"Sales" IN task.skillsNeeded',
                    "targets": [{"queue": queue.sid}],
                }
            ],
            "default_filter": {"queue": queue.sid},
        }
    }
    workflow = ws.workflows.create(
        friendly_name="Sales desk workflow", configuration=json.dumps(configuration), task_reservation_timeout=20
    )
    print("workflow", workflow.friendly_name, workflow.task_reservation_timeout)

    task = ws.tasks.create(workflow_sid=workflow.sid, attributes=json.dumps({"skillsNeeded": ["Sales"]}))
    assert task.assignment_status == "pending", task.assignment_status
    print("task", task.assignment_status, task.task_queue_friendly_name)

    ws.workers(sam.sid).update(activity_sid=ready.sid)
    reservations = ws.tasks(task.sid).reservations.list()
    assert len(reservations) == 1, reservations
    reservation = reservations[0]
    assert reservation.worker_name == "sam" and reservation.reservation_status == "pending"
    print("reservation", reservation.worker_name, reservation.reservation_status)

    accepted = ws.tasks(task.sid).reservations(reservation.sid).update(reservation_status="accepted")
    assert accepted.reservation_status == "accepted", accepted.reservation_status
    assert ws.tasks(task.sid).fetch().assignment_status == "assigned"
    print("accepted", accepted.reservation_status)

    completed = ws.tasks(task.sid).update(assignment_status="completed", reason="sold")
    assert completed.assignment_status == "completed", completed.assignment_status
    print("completed", completed.assignment_status, completed.reason)

    statistics = ws.task_queues(queue.sid).real_time_statistics().fetch()
    # Sam, and the default workspace's alice and bob, have the Sales skill; only sam is ready.
    assert statistics.total_eligible_workers == 3, statistics.total_eligible_workers
    assert statistics.total_available_workers == 1, statistics.total_available_workers
    print("statistics", statistics.total_tasks, statistics.total_eligible_workers, statistics.total_available_workers)

    cumulative = ws.task_queues(queue.sid).cumulative_statistics().fetch(split_by_wait_time="30,60")
    assert (cumulative.end_time - cumulative.start_time).total_seconds() == 15 * 60, cumulative.start_time
    split = cumulative.split_by_wait_time
    print("cumulative", cumulative.tasks_entered, cumulative.tasks_completed, cumulative.reservations_accepted, *split)

    # A task channel, and a worker's capacity on it, as a Flex setup script makes them.
    email = ws.task_channels.create(friendly_name="Email", unique_name="email")
    assert ws.task_channels("email").fetch().sid == email.sid
    channels = [channel.unique_name for channel in ws.task_channels.list()]
    sams = ws.workers(sam.sid).worker_channels("email").update(capacity=2, available=True)
    assert (sams.task_channel_sid, sams.configured_capacity) == (email.sid, 2), sams
    capacities = {c.task_channel_unique_name: c.configured_capacity for c in ws.workers(sam.sid).worker_channels.list()}
    print("channels", *channels, capacities["email"], capacities["sms"])
    settings = ws.update(timeout_activity_sid=lunch.sid, prioritize_queue_order="LIFO")
    assert ws.fetch().timeout_activity_sid == lunch.sid
    print("workspace", settings.timeout_activity_name, settings.prioritize_queue_order)

    # Updates and deletions, as a Terraform run or a clean-up script makes them.
    renamed = ws.workflows(workflow.sid).update(friendly_name="Sales only", task_reservation_timeout=30)
    assert (renamed.friendly_name, renamed.task_reservation_timeout) == ("Sales only", 30), renamed
    assert ws.tasks(task.sid).delete() is True
    assert ws.workflows(workflow.sid).delete() is True
    assert ws.task_queues(queue.sid).delete() is True
    assert ws.task_channels(email.sid).delete() is True
    remaining = [q.friendly_name for q in ws.task_queues.list()]
    assert "Sales desk" not in remaining, remaining
    print("deleted", len(remaining), "queues left")


if __name__ == "__main__":
    main(*sys.argv[1:4])
