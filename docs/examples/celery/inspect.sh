# docs: run by tests/copilot/test_celery_app.py (a live `copilot worker` on Redis)
# With the same COPILOT_* environment as the workers (same broker, same queue):
celery -A copilot.celery_app inspect ping --timeout 5
celery -A copilot.celery_app inspect active_queues --timeout 5
